import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { Tenant_State, type Tenant } from "../../src/client.js";

// The cache is off: every GetTenant and LookupTenant by domain goes through
// the coalescing loader to PostgreSQL.
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ tenantCacheSize: 0 });
});
afterAll(async () => {
  await server?.close();
});

function unique(i: number) {
  const tag = `${i}-${Math.random().toString(36).slice(2, 8)}`;
  return { name: `Loader ${tag}`, domain: `loader-${tag}.example.org`, params: { i } };
}

const queriesById = () => server.tenantLoader.stats.byId.batches;

describe("coalesced tenant reads", () => {
  it("gives each of many concurrent callers its own answer, with fewer queries than requests", async () => {
    const tenants: Tenant[] = [];
    for (let i = 0; i < 20; i++) tenants.push(await server.grpc.tenants.createTenant({ tenant: unique(i) }));
    const deleted = tenants[0]!;
    await server.grpc.tenants.deleteTenant({ id: deleted.id });
    const live = tenants.slice(1);
    const unknownId = "00000000-0000-4000-8000-00000000abcd";

    type Outcome = { id: string; state: Tenant_State } | { code: string; reason?: string };
    const outcome = (call: Promise<Tenant>): Promise<Outcome> =>
      call.then(
        (t) => ({ id: t.id, state: t.state }),
        (e: unknown) => describeError(e as never),
      );
    const calls: Array<{ call: () => Promise<Outcome>; expected: Outcome }> = [];
    for (let round = 0; round < 6; round++) {
      for (const t of live) {
        calls.push({ call: () => outcome(server.grpc.tenants.getTenant({ id: t.id })), expected: { id: t.id, state: Tenant_State.ACTIVE } });
        calls.push({
          call: () => outcome(server.grpc.tenants.lookupTenant({ key: { case: "domain", value: t.domain.toUpperCase() } })),
          expected: { id: t.id, state: Tenant_State.ACTIVE },
        });
      }
      calls.push({ call: () => outcome(server.grpc.tenants.getTenant({ id: deleted.id.toUpperCase() })), expected: { id: deleted.id, state: Tenant_State.DELETED } });
      calls.push({
        call: () => outcome(server.grpc.tenants.lookupTenant({ key: { case: "domain", value: deleted.domain } })),
        expected: { code: "NotFound", reason: "TENANT_NOT_FOUND" },
      });
      calls.push({ call: () => outcome(server.grpc.tenants.getTenant({ id: unknownId })), expected: { code: "NotFound", reason: "TENANT_NOT_FOUND" } });
    }
    const getCount = calls.length / 2;
    const before = queriesById();
    const outcomes = await Promise.all(calls.map((c) => c.call()));
    expect(outcomes).toEqual(calls.map((c) => c.expected));
    // 6 × 21 GetTenant calls at once on one HTTP/2 connection: they share queries.
    const queries = queriesById() - before;
    expect(queries).toBeGreaterThan(0);
    expect(queries).toBeLessThan(getCount / 2);
  });

  it("answers the full tenant as GetTenant always has", async () => {
    const created = await server.grpc.tenants.createTenant({ tenant: { ...unique(99), params: { plan: "pro", nested: { on: true } } } });
    const read = await server.grpc.tenants.getTenant({ id: created.id });
    expect(read).toEqual(created);
    const byDomain = await server.connect.tenants.lookupTenant({ key: { case: "domain", value: `${created.domain}.` } });
    expect(byDomain).toEqual(await server.connect.tenants.getTenant({ id: created.id }));
  });

  it("stops at the caller's deadline and has the database cancel the shared query", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique(100) });
    // An ACCESS EXCLUSIVE lock blocks even plain reads of the table.
    const holder = new pg.Client({ connectionString: server.databaseUrl });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query(`LOCK TABLE "Tenants" IN ACCESS EXCLUSIVE MODE`);
    let patient: Promise<Tenant> | undefined;
    try {
      for (const client of [server.grpc, server.connect]) {
        const error = await rpcError(client.tenants.getTenant({ id: tenant.id }, { timeoutMs: 300 }));
        expect(error.code).toBe(Code.DeadlineExceeded);
        const byDomain = await rpcError(client.tenants.lookupTenant({ key: { case: "domain", value: tenant.domain } }, { timeoutMs: 300 }));
        expect(byDomain.code).toBe(Code.DeadlineExceeded);
      }
      await waitUntil(async () => (await blockedReads()) === 0);
      // A caller without a deadline waits for the lock, and then gets its answer.
      patient = server.grpc.tenants.getTenant({ id: tenant.id });
      await waitUntil(async () => (await blockedReads()) === 1);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    expect((await patient)?.id).toBe(tenant.id);
  });
});

/** The loader's queries now waiting on a lock. */
async function blockedReads(): Promise<number> {
  const { rows } = await server.sql.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%= ANY(%'`,
  );
  return rows[0].n;
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 3_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("coalesced tenant creates", () => {
  it("answers each of many concurrent creates on its own, duplicates included, with fewer statements than requests", async () => {
    const taken = await server.grpc.tenants.createTenant({ tenant: unique(200) });
    const tag = Math.random().toString(36).slice(2, 8);
    const requests = Array.from({ length: 40 }, (_, i) => ({ name: `Batch ${tag} ${i}`, domain: `batch-${tag}-${i}.example.org`, params: { i } }));
    // The same name twice (case differs), the same domain twice, and a domain already stored.
    requests.push({ name: `BATCH ${tag} 0`, domain: `other-${tag}-a.example.org`, params: { i: 100 } });
    requests.push({ name: `Other ${tag} b`, domain: `BATCH-${tag}-1.example.org`, params: { i: 101 } });
    requests.push({ name: `Other ${tag} c`, domain: taken.domain, params: { i: 102 } });
    const before = server.tenantInserter.stats.batches;
    const outcomes = await Promise.all(
      requests.map((tenant) =>
        server.grpc.tenants.createTenant({ tenant }).then(
          (t) => ({ ok: true as const, tenant: t }),
          (e: unknown) => ({ ok: false as const, error: describeError(e as never) }),
        ),
      ),
    );
    const batches = server.tenantInserter.stats.batches - before;
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(requests.length / 2);

    // Of each pair that collides, exactly one was created, the other told why.
    const byName = (name: string) => outcomes.filter((o, i) => requests[i]!.name.toLowerCase() === name.toLowerCase());
    const byDomain = (domain: string) => outcomes.filter((o, i) => requests[i]!.domain.toLowerCase() === domain.toLowerCase());
    const pair = (group: typeof outcomes) => group.map((o) => (o.ok ? "created" : o.error.reason)).sort();
    expect(pair(byName(`Batch ${tag} 0`))).toEqual(["TENANT_NAME_TAKEN", "created"]);
    expect(pair(byDomain(`batch-${tag}-1.example.org`))).toEqual(["TENANT_DOMAIN_TAKEN", "created"]);
    expect(outcomes.at(-1)).toEqual({ ok: false, error: { code: "AlreadyExists", reason: "TENANT_DOMAIN_TAKEN" } });
    expect(outcomes.filter((o) => o.ok)).toHaveLength(40);

    // What each caller was told is what is stored.
    for (const [i, o] of outcomes.entries()) {
      if (!o.ok) continue;
      expect(o.tenant.params).toEqual(requests[i]!.params);
      expect(await server.grpc.tenants.getTenant({ id: o.tenant.id })).toEqual(o.tenant);
    }
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE name ILIKE $1 OR name ILIKE $2`, [
      `Batch ${tag} %`,
      `Other ${tag} %`,
    ]);
    expect(rows[0].n).toBe(40);
  });

  it("gives the other tenants of a batch that PostgreSQL refused as a whole their own answers", async () => {
    // A trigger refuses some rows (as a serialization failure, answered ABORTED):
    // the statement for the whole batch fails, then each tenant is tried alone.
    await server.sql.query(`
      CREATE FUNCTION refuse_some() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '40001'; END $$;
      CREATE TRIGGER refuse_some BEFORE INSERT ON "Tenants" FOR EACH ROW WHEN (NEW.name LIKE 'Refused%') EXECUTE FUNCTION refuse_some();
    `);
    try {
      const tag = Math.random().toString(36).slice(2, 8);
      const requests = Array.from({ length: 20 }, (_, i) => ({
        name: `${i % 10 === 3 ? "Refused" : "Accepted"} ${tag} ${i}`,
        domain: `refuse-${tag}-${i}.example.org`,
      }));
      const before = server.tenantInserter.stats.batches;
      const outcomes = await Promise.all(
        requests.map((tenant) => server.grpc.tenants.createTenant({ tenant }).then(() => "created", (e: unknown) => describeError(e as never).code)),
      );
      expect(server.tenantInserter.stats.batches - before).toBeLessThan(requests.length / 2);
      expect(outcomes).toEqual(requests.map((r) => (r.name.startsWith("Refused") ? "Aborted" : "created")));
    } finally {
      await server.sql.query(`DROP TRIGGER refuse_some ON "Tenants"; DROP FUNCTION refuse_some()`);
    }
  });
});
