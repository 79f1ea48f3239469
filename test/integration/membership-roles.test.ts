import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema, type TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { clientsWithToken, hsToken, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET } from "../support/tokens.js";

let server: TestServer;
let platform: TenancyClients;
beforeAll(async () => {
  server = await startTestServer({
    auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET }, issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
  });
  platform = clientsWithToken(server.baseUrl, await hsToken({ admin: true }));
});
afterAll(async () => {
  await server?.close();
});

const tag = () => Math.random().toString(36).slice(2, 10);

async function newTenant() {
  return platform.tenants.createTenant({ tenant: { name: `Roles ${tag()}`, domain: `${tag()}.roles.example` } });
}

/** A user with their own token, made a member of the tenant with these roles. */
async function memberOf(tenantId: string, roles: string[]) {
  const userId = crypto.randomUUID();
  const membership = await platform.memberships.createMembership({ membership: { tenantId, userId, roles } });
  return { userId, membership, clients: clientsWithToken(server.baseUrl, await hsToken({ sub: userId })) };
}

describe("roles on CreateMembership and UpdateMembership", () => {
  it("stores roles de-duplicated in their order, and returns them with an etag", async () => {
    const tenant = await newTenant();
    const created = await platform.memberships.createMembership({
      membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: ["viewer", "admin", "viewer", "billing.read"] },
    });
    expect(created.roles).toEqual(["viewer", "admin", "billing.read"]);
    expect(created.etag).toBe('"1"');
    expect(await platform.memberships.getMembership({ id: created.id })).toEqual(created);
    const { rows } = await server.sql.query(`SELECT roles FROM "UserTenantMapping" WHERE "Id" = $1`, [created.id]);
    expect(rows[0].roles).toEqual(["viewer", "admin", "billing.read"]);
  });

  it("replaces the roles (empty mask means roles), bumps the etag and stamps updated_by", async () => {
    const tenant = await newTenant();
    const created = await platform.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    const admin = await memberOf(tenant.id, ["admin"]);
    const updated = await admin.clients.memberships.updateMembership({ membership: { id: created.id, roles: ["editor", "editor"] } });
    expect(updated).toMatchObject({ id: created.id, roles: ["editor"], etag: '"2"', updatedBy: admin.userId, createdBy: created.createdBy });
    const masked = await admin.clients.memberships.updateMembership({
      membership: { id: created.id, roles: [], etag: updated.etag },
      updateMask: { paths: ["roles"] },
    });
    expect(masked).toMatchObject({ roles: [], etag: '"3"' });
  });

  it("refuses bad role names, too many roles and unknown mask paths, one violation each", async () => {
    const tenant = await newTenant();
    const bad = await rpcError(
      platform.memberships.createMembership({
        membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: ["ok", "Admin", "", "x".repeat(65), "a b", "ünï"] },
      }),
    );
    expect(describeError(bad)).toEqual({
      code: "InvalidArgument",
      fields: ["membership.roles[1]", "membership.roles[2]", "membership.roles[3]", "membership.roles[4]", "membership.roles[5]"],
    });
    const many = Array.from({ length: 33 }, (_, i) => `role-${i}`);
    expect(describeError(await rpcError(platform.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: many } })))).toEqual({
      code: "InvalidArgument",
      fields: ["membership.roles"],
    });
    // 32 distinct roles, with duplicates, are fine.
    const created = await platform.memberships.createMembership({
      membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: [...many.slice(0, 32), "role-0"] },
    });
    expect(created.roles).toHaveLength(32);
    const path = await rpcError(
      platform.memberships.updateMembership({ membership: { id: created.id, roles: [] }, updateMask: { paths: ["roles", "user_id"] } }),
    );
    expect(describeError(path)).toEqual({ code: "InvalidArgument", fields: ["update_mask.paths[1]"] });
    expect(describeError(await rpcError(platform.memberships.updateMembership({})))).toEqual({ code: "InvalidArgument", fields: ["membership"] });
    expect(describeError(await rpcError(platform.memberships.updateMembership({ membership: { id: "x" } })))).toEqual({
      code: "InvalidArgument",
      fields: ["membership.id"],
    });
  });

  it("answers NOT_FOUND and ETAG_MISMATCH (with the current etag) to a platform administrator", async () => {
    expect(describeError(await rpcError(platform.memberships.updateMembership({ membership: { id: crypto.randomUUID() } })))).toEqual({
      code: "NotFound",
      reason: "MEMBERSHIP_NOT_FOUND",
    });
    const tenant = await newTenant();
    const created = await platform.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    await platform.memberships.updateMembership({ membership: { id: created.id, roles: ["a"] } });
    const stale = await rpcError(platform.memberships.updateMembership({ membership: { id: created.id, roles: ["b"], etag: created.etag } }));
    expect(describeError(stale)).toEqual({ code: "Aborted", reason: "ETAG_MISMATCH" });
    expect(stale.findDetails(ErrorInfoSchema)[0]?.metadata).toEqual({ current_etag: '"2"' });
    expect((await platform.memberships.getMembership({ id: created.id })).roles).toEqual(["a"]);
  });
});

describe("the last admin of a tenant", () => {
  it("cannot demote or remove themselves while they are the only admin", async () => {
    const tenant = await newTenant();
    const only = await memberOf(tenant.id, ["admin", "billing"]);
    const demote = await rpcError(only.clients.memberships.updateMembership({ membership: { id: only.membership.id, roles: ["billing"] } }));
    expect(describeError(demote)).toEqual({ code: "FailedPrecondition", reason: "LAST_ADMIN" });
    const leave = await rpcError(only.clients.memberships.deleteMembership({ id: only.membership.id }));
    expect(describeError(leave)).toEqual({ code: "FailedPrecondition", reason: "LAST_ADMIN" });
    // Keeping the admin role while changing others is fine.
    const kept = await only.clients.memberships.updateMembership({ membership: { id: only.membership.id, roles: ["admin"] } });
    expect(kept.roles).toEqual(["admin"]);
  });

  it("holds for a platform administrator too: the tenant is never left without an admin", async () => {
    const tenant = await newTenant();
    const only = await memberOf(tenant.id, ["admin"]);
    expect(describeError(await rpcError(platform.memberships.deleteMembership({ id: only.membership.id })))).toEqual({
      code: "FailedPrecondition",
      reason: "LAST_ADMIN",
    });
    expect(describeError(await rpcError(platform.memberships.updateMembership({ membership: { id: only.membership.id, roles: [] } })))).toEqual({
      code: "FailedPrecondition",
      reason: "LAST_ADMIN",
    });
  });

  it("can step down once another admin exists, after which that one is the last", async () => {
    const tenant = await newTenant();
    const first = await memberOf(tenant.id, ["admin"]);
    const plain = await memberOf(tenant.id, []);
    const promoted = await first.clients.memberships.updateMembership({ membership: { id: plain.membership.id, roles: ["admin"] } });
    expect(promoted.roles).toEqual(["admin"]);
    await first.clients.memberships.updateMembership({ membership: { id: first.membership.id, roles: [] } });
    // first is no longer an admin: may not manage memberships any more.
    expect((await rpcError(first.clients.memberships.listMemberships({ tenantId: tenant.id }))).code).toBe(Code.PermissionDenied);
    expect(describeError(await rpcError(plain.clients.memberships.deleteMembership({ id: plain.membership.id })))).toEqual({
      code: "FailedPrecondition",
      reason: "LAST_ADMIN",
    });
    // Removing a non-admin is never blocked.
    await plain.clients.memberships.deleteMembership({ id: first.membership.id });
  });

  it("survives two admins demoting or removing each other at the same time: exactly one succeeds", async () => {
    for (const change of ["demote", "remove"] as const) {
      for (let round = 0; round < 5; round++) {
        const tenant = await newTenant();
        const a = await memberOf(tenant.id, ["admin"]);
        const b = await memberOf(tenant.id, ["admin"]);
        const act = (actor: typeof a, target: typeof b) =>
          change === "demote"
            ? actor.clients.memberships.updateMembership({ membership: { id: target.membership.id, roles: [] } })
            : actor.clients.memberships.deleteMembership({ id: target.membership.id });
        const results = await Promise.allSettled([act(a, b), act(b, a)]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        // The loser is refused by the rule, or, when its request arrived after
        // the winner's commit, because it no longer administers the tenant.
        const failure = await rpcError(Promise.reject(results.find((r) => r.status === "rejected")!.reason));
        expect([{ code: "FailedPrecondition", reason: "LAST_ADMIN" }, { code: "PermissionDenied" }]).toContainEqual(describeError(failure));
        const { rows } = await server.sql.query(
          `SELECT count(*)::int AS n FROM "UserTenantMapping" WHERE "tenantId" = $1 AND 'admin' = ANY(roles)`,
          [tenant.id],
        );
        expect(rows[0].n).toBe(1);
      }
    }
  });

  it("does not apply to a tenant that never had an admin", async () => {
    const tenant = await newTenant();
    const created = await platform.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: ["viewer"] } });
    await platform.memberships.updateMembership({ membership: { id: created.id, roles: [] } });
    await platform.memberships.deleteMembership({ id: created.id });
  });
});
