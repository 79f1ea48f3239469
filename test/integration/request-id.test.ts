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

function input() {
  const tag = Math.random().toString(36).slice(2, 10);
  return { name: `Retry ${tag}`, domain: `${tag}.retry.example`, params: { b: 1, a: { y: 2, x: 1 } } };
}

describe("request_id (AIP-155)", () => {
  it("answers a retry of a committed create with the original response, creating nothing new", async () => {
    const requestId = crypto.randomUUID();
    const tenant = input();
    const first = await server.grpc.tenants.createTenant({ tenant, requestId });
    // The same request over another protocol, with params keys in another order.
    const retry = await server.connect.tenants.createTenant({
      tenant: { ...tenant, params: { a: { x: 1, y: 2 }, b: 1 } },
      requestId,
    });
    expect(retry).toEqual(first);
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE domain = $1`, [tenant.domain]);
    expect(rows[0].n).toBe(1);
  });

  it("refuses the same request_id with a different request", async () => {
    const requestId = crypto.randomUUID();
    await server.grpc.tenants.createTenant({ tenant: input(), requestId });
    const error = await rpcError(server.grpc.tenants.createTenant({ tenant: input(), requestId }));
    expect(describeError(error)).toEqual({ code: "AlreadyExists", reason: "REQUEST_ID_REUSED" });
    const other = await rpcError(
      server.grpc.memberships.createMembership({ membership: { tenantId: crypto.randomUUID(), userId: crypto.randomUUID() }, requestId }),
    );
    expect(describeError(other)).toEqual({ code: "AlreadyExists", reason: "REQUEST_ID_REUSED" });
  });

  it("gives every concurrent duplicate the one result", async () => {
    const requestId = crypto.randomUUID();
    const tenant = input();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? server.grpc : server.connect).tenants.createTenant({ tenant, requestId })),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE domain = $1`, [tenant.domain]);
    expect(rows[0].n).toBe(1);
  });

  it("does not burn the request_id of a create that failed", async () => {
    const blocker = await server.grpc.tenants.createTenant({ tenant: input() });
    const requestId = crypto.randomUUID();
    const tenant = { ...input(), name: blocker.name };
    const failed = await rpcError(server.grpc.tenants.createTenant({ tenant, requestId }));
    expect(describeError(failed)).toEqual({ code: "AlreadyExists", reason: "TENANT_NAME_TAKEN" });
    await server.grpc.tenants.deleteTenant({ id: blocker.id });
    await server.grpc.tenants.purgeTenant({ id: blocker.id });
    const created = await server.grpc.tenants.createTenant({ tenant, requestId });
    expect(created.name).toBe(blocker.name);
  });

  it("makes CreateMembership retries safe too", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: input() });
    const requestId = crypto.randomUUID();
    const membership = { tenantId: tenant.id, userId: crypto.randomUUID() };
    const first = await server.grpc.memberships.createMembership({ membership, requestId });
    const retry = await server.grpc.memberships.createMembership({ membership, requestId });
    expect(retry).toEqual(first);
    const withoutId = await rpcError(server.grpc.memberships.createMembership({ membership }));
    expect(describeError(withoutId)).toEqual({ code: "AlreadyExists", reason: "MEMBERSHIP_EXISTS" });
  });

  it("recognises a retry on another instance, and after that instance restarts", async () => {
    const requestId = crypto.randomUUID();
    const tenant = input();
    const first = await server.grpc.tenants.createTenant({ tenant, requestId });
    for (let i = 0; i < 2; i++) {
      // A fresh instance each time: nothing is remembered in memory.
      const other = await startTestServer({ databaseUrl: server.databaseUrl });
      try {
        expect(await other.grpc.tenants.createTenant({ tenant, requestId })).toEqual(first);
      } finally {
        await other.close();
      }
    }
  });
});
