import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { waitUntil } from "../support/wait.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ poolSize: 2, acquireTimeoutMs: 500 });
});
afterAll(async () => {
  await server?.close();
});

function unique() {
  const tag = Math.random().toString(36).slice(2, 10);
  return { name: `Fault ${tag}`, domain: `${tag}.fault.example` };
}

/** Holds a row lock on a tenant from outside the service until released. */
async function lockTenant(id: string) {
  const client = new pg.Client({ connectionString: (server.sql as unknown as { options: { connectionString: string } }).options.connectionString });
  await client.connect();
  await client.query("BEGIN");
  await client.query(`SELECT 1 FROM "Tenants" WHERE tenant_id = $1 FOR UPDATE`, [id]);
  return async () => {
    await client.query("ROLLBACK");
    await client.end();
  };
}

async function waitingQueries(): Promise<number> {
  const { rows } = await server.sql.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  );
  return rows[0].n;
}

describe("deadlines", () => {
  it("answers DEADLINE_EXCEEDED and leaves no query behind when the database is slower than the deadline", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    const release = await lockTenant(tenant.id);
    try {
      for (const client of [server.grpc, server.connect]) {
        const error = await rpcError(
          client.tenants.updateTenant({ tenant: { id: tenant.id, params: { slow: true } } }, { timeoutMs: 300 }),
        );
        expect(error.code).toBe(4 /* DEADLINE_EXCEEDED */);
      }
      // The blocked UPDATE was cancelled by the database, not left waiting.
      await waitUntil(async () => (await waitingQueries()) === 0, "the blocked updates cancelled", { timeoutMs: 2_000 });
    } finally {
      await release();
    }
    // The update was not applied half-way; the tenant is as it was.
    expect((await server.grpc.tenants.getTenant({ id: tenant.id })).params).toEqual({});
  });

  it("bounds reads by the deadline too (ListTenants, LookupTenant by name)", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    // An ACCESS EXCLUSIVE lock blocks even plain reads of the table.
    const holder = new pg.Client({ connectionString: server.databaseUrl });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query(`LOCK TABLE "Tenants" IN ACCESS EXCLUSIVE MODE`);
    try {
      const calls = [
        server.grpc.tenants.listTenants({}, { timeoutMs: 300 }),
        server.connect.tenants.lookupTenant({ key: { case: "name", value: tenant.name } }, { timeoutMs: 300 }),
      ];
      for (const call of calls) expect((await rpcError(call)).code).toBe(4 /* DEADLINE_EXCEEDED */);
      await waitUntil(async () => (await waitingQueries()) === 0, "the blocked reads cancelled", { timeoutMs: 2_000 });
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
  });

  it("serves requests with a generous deadline normally", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() }, { timeoutMs: 5_000 });
    const updated = await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { a: 1 } } }, { timeoutMs: 5_000 });
    expect(updated.params).toEqual({ a: 1 });
  });
});

describe("pool exhaustion", () => {
  it("queues for a bounded time, then answers UNAVAILABLE instead of waiting forever", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    const release = await lockTenant(tenant.id);
    try {
      // Two updates hold both pool connections while they wait on the lock.
      const blocked = [0, 1].map((i) =>
        server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { i } } }).catch((e) => e),
      );
      await waitUntil(async () => (await waitingQueries()) === 2, "both updates waiting on the lock");
      const error = await rpcError(server.grpc.tenants.getTenant({ id: tenant.id }));
      expect(describeError(error).code).toBe("Unavailable");
      await release();
      await Promise.all(blocked);
    } finally {
      await release().catch(() => {});
    }
    // Free again once the lock is gone.
    expect((await server.grpc.tenants.getTenant({ id: tenant.id })).id).toBe(tenant.id);
  });
});
