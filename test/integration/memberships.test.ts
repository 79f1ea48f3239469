import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function newTenant() {
  const tag = Math.random().toString(36).slice(2, 10);
  return server.grpc.tenants.createTenant({ tenant: { name: `Members ${tag}`, domain: `${tag}.members.example` } });
}

describe("CreateMembership and GetMembership", () => {
  it("creates a membership stamped with the x-actor-id header, ignoring what the message says", async () => {
    const tenant = await newTenant();
    const actor = crypto.randomUUID();
    const userId = crypto.randomUUID();
    const created = await server.connect.memberships.createMembership(
      { membership: { tenantId: tenant.id, userId, createdBy: crypto.randomUUID(), updatedBy: "forged" } },
      { headers: { "x-actor-id": actor } },
    );
    expect(created).toMatchObject({ tenantId: tenant.id, userId, createdBy: actor, updatedBy: actor });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.createTime).toBeDefined();
    expect(await server.grpc.memberships.getMembership({ id: created.id })).toEqual(created);
    const { rows } = await server.sql.query(
      `SELECT "tenantId", "userId", "createdBy", "updatedBy" FROM "UserTenantMapping" WHERE "Id" = $1`,
      [created.id],
    );
    expect(rows).toEqual([{ tenantId: tenant.id, userId, createdBy: actor, updatedBy: actor }]);
  });

  it("leaves created_by empty without a UUID actor header", async () => {
    const tenant = await newTenant();
    const created = await server.grpc.memberships.createMembership(
      { membership: { tenantId: tenant.id, userId: crypto.randomUUID() } },
      { headers: { "x-actor-id": "root" } },
    );
    expect(created.createdBy).toBe("");
    expect(created.updatedBy).toBe("");
  });

  it("answers NOT_FOUND for a tenant that does not exist", async () => {
    const error = await rpcError(
      server.grpc.memberships.createMembership({ membership: { tenantId: crypto.randomUUID(), userId: crypto.randomUUID() } }),
    );
    expect(describeError(error)).toEqual({ code: "NotFound", reason: "TENANT_NOT_FOUND" });
  });

  it("answers ALREADY_EXISTS, naming the existing membership, when the user is already a member", async () => {
    const tenant = await newTenant();
    const userId = crypto.randomUUID();
    const first = await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId } });
    const error = await rpcError(
      server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: userId.toUpperCase() } }),
    );
    expect(describeError(error)).toEqual({ code: "AlreadyExists", reason: "MEMBERSHIP_EXISTS" });
    expect(error.findDetails((await import("../../src/client.js")).ErrorInfoSchema)[0]?.metadata).toEqual({
      membership_id: first.id,
    });
  });

  it("lets exactly one of many concurrent identical creates win", async () => {
    const tenant = await newTenant();
    const userId = crypto.randomUUID();
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId } })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "UserTenantMapping" WHERE "tenantId" = $1`, [tenant.id]);
    expect(rows[0].n).toBe(1);
  });

  it("refuses missing and malformed ids with one violation per field", async () => {
    expect(describeError(await rpcError(server.grpc.memberships.createMembership({})))).toEqual({
      code: "InvalidArgument",
      fields: ["membership"],
    });
    const both = await rpcError(server.grpc.memberships.createMembership({ membership: { tenantId: "x", userId: "" } }));
    expect(describeError(both)).toEqual({ code: "InvalidArgument", fields: ["membership.tenant_id", "membership.user_id"] });
    expect(describeError(await rpcError(server.grpc.memberships.getMembership({ id: "1" })))).toEqual({
      code: "InvalidArgument",
      fields: ["id"],
    });
    expect(describeError(await rpcError(server.grpc.memberships.getMembership({ id: crypto.randomUUID() })))).toEqual({
      code: "NotFound",
      reason: "MEMBERSHIP_NOT_FOUND",
    });
  });
});

describe("DeleteMembership", () => {
  it("deletes, then answers NOT_FOUND", async () => {
    const tenant = await newTenant();
    const created = await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    expect(await server.connect.memberships.deleteMembership({ id: created.id })).toEqual({ $typeName: "google.protobuf.Empty" });
    expect(describeError(await rpcError(server.connect.memberships.deleteMembership({ id: created.id })))).toEqual({
      code: "NotFound",
      reason: "MEMBERSHIP_NOT_FOUND",
    });
    expect(describeError(await rpcError(server.connect.memberships.deleteMembership({ id: "" })))).toEqual({
      code: "InvalidArgument",
      fields: ["id"],
    });
  });
});

describe("ListMemberships", () => {
  it("lists the members of a tenant, the tenants of a user, and both together, across pages", async () => {
    const [a, b] = [await newTenant(), await newTenant()];
    const user = crypto.randomUUID();
    const others = Array.from({ length: 7 }, () => crypto.randomUUID());
    const inA = [];
    for (const u of [user, ...others]) {
      inA.push(await server.grpc.memberships.createMembership({ membership: { tenantId: a.id, userId: u } }));
    }
    const inB = await server.grpc.memberships.createMembership({ membership: { tenantId: b.id, userId: user } });

    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await server.connect.memberships.listMemberships({ tenantId: a.id, pageSize: 3, pageToken });
      expect(page.totalSize).toBe(8);
      expect(page.memberships.length).toBeLessThanOrEqual(3);
      seen.push(...page.memberships.map((m) => m.id));
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken);
    expect(pages).toBe(3);
    expect(seen).toEqual(inA.map((m) => m.id));

    const ofUser = await server.grpc.memberships.listMemberships({ userId: user });
    expect(ofUser.memberships.map((m) => m.tenantId)).toEqual([a.id, b.id]);
    expect(ofUser.totalSize).toBe(2);
    const both = await server.grpc.memberships.listMemberships({ userId: user, tenantId: b.id });
    expect(both.memberships.map((m) => m.id)).toEqual([inB.id]);
    const none = await server.grpc.memberships.listMemberships({ userId: crypto.randomUUID() });
    expect(none).toMatchObject({ memberships: [], nextPageToken: "", totalSize: 0 });
  });

  it("refuses bad filters, negative page sizes and tokens from another query", async () => {
    expect(describeError(await rpcError(server.grpc.memberships.listMemberships({ tenantId: "x", userId: "y" })))).toEqual({
      code: "InvalidArgument",
      fields: ["tenant_id", "user_id"],
    });
    expect(describeError(await rpcError(server.grpc.memberships.listMemberships({ pageSize: -1 })))).toEqual({
      code: "InvalidArgument",
      fields: ["page_size"],
    });
    const tenant = await newTenant();
    for (let i = 0; i < 2; i++) {
      await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    }
    const first = await server.grpc.memberships.listMemberships({ tenantId: tenant.id, pageSize: 1 });
    expect(first.nextPageToken).not.toBe("");
    const reused = await rpcError(
      server.grpc.memberships.listMemberships({ tenantId: crypto.randomUUID(), pageSize: 1, pageToken: first.nextPageToken }),
    );
    expect(describeError(reused)).toEqual({ code: "InvalidArgument", fields: ["page_token"] });
    for (const pageToken of ["garbage!", "eyJ2IjoxfQ", Buffer.from('{"v":1,"q":"x","k":["1","2"]}').toString("base64url")]) {
      expect(describeError(await rpcError(server.grpc.memberships.listMemberships({ pageToken })))).toEqual({
        code: "InvalidArgument",
        fields: ["page_token"],
      });
    }
  });
});
