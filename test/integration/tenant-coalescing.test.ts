import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import pg from "pg";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { coalescedInsertStatement, holdBatches, holdCoalescedCreates, refuseCoalescedRows } from "../support/coalescing.js";
import { waitUntil } from "../support/wait.js";
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

function unique(i: number | string) {
  const tag = `${i}-${Math.random().toString(36).slice(2, 8)}`;
  return { name: `Loader ${tag}`, domain: `loader-${tag}.example.org`, params: { i } };
}

/** A counter of GET /metrics, by its labels as written (`kind="create_tenant"`). */
async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

/** Holds the coalesced CreateTenant statements behind a lock (see holdBatches). */
const holdCreates = (deadline?: number) =>
  holdCoalescedCreates(server, "tenants", () => server.grpc.tenants.createTenant({ tenant: unique("blocker") }, { timeoutMs: deadline }));

const outcomeOf = (call: Promise<Tenant>) =>
  call.then(
    (tenant) => ({ ok: true as const, tenant }),
    (e: unknown) => ({ ok: false as const, error: describeError(e as never) }),
  );

describe("coalesced tenant reads", () => {
  it("gives each of many concurrent callers its own answer, from one query", async () => {
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
    // The reads by id queue up behind a lock that blocks even plain reads,
    // then go out together.
    const held = await holdBatches(server, {
      table: "Tenants",
      mode: "ACCESS EXCLUSIVE",
      statement: `SELECT * FROM "Tenants" WHERE tenant_id = ANY(`,
      stats: () => server.tenantLoader.stats.byId,
      blocker: () => server.grpc.tenants.getTenant({ id: live[0]!.id }),
    });
    const outcomes: Outcome[] = await held.together(
      calls.map((c) => c.call()),
      getCount,
    );
    expect(outcomes).toEqual(calls.map((c) => c.expected));
    // 6 × 21 GetTenant calls (and the last blocker) read with one query.
    expect(server.tenantLoader.stats.byId.batches - held.batchesBefore).toBe(1);
    await held.blockers();
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
      await waitUntil(async () => (await blockedReads()) === 0, "the shared reads cancelled");
      // A caller without a deadline waits for the lock, and then gets its answer.
      patient = server.grpc.tenants.getTenant({ id: tenant.id });
      await waitUntil(async () => (await blockedReads()) === 1, "the patient read waiting");
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

describe("coalesced tenant creates", () => {
  it("answers each of many concurrent creates on its own, duplicates included, from one statement", async () => {
    const taken = await server.grpc.tenants.createTenant({ tenant: unique(200) });
    const tag = Math.random().toString(36).slice(2, 8);
    const requests = Array.from({ length: 40 }, (_, i) => ({ name: `Batch ${tag} ${i}`, domain: `batch-${tag}-${i}.example.org`, params: { i } }));
    // The same name twice (case differs), the same domain twice, and a domain already stored.
    requests.push({ name: `BATCH ${tag} 0`, domain: `other-${tag}-a.example.org`, params: { i: 100 } });
    requests.push({ name: `Other ${tag} b`, domain: `BATCH-${tag}-1.example.org`, params: { i: 101 } });
    requests.push({ name: `Other ${tag} c`, domain: taken.domain, params: { i: 102 } });
    const held = await holdCreates();
    const outcomes = await held.together(requests.map((tenant) => outcomeOf(server.grpc.tenants.createTenant({ tenant }))));
    expect(server.tenantInserter.stats.batches - held.batchesBefore).toBe(1);
    await held.blockers();

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

  it("coalesces creates that carry a deadline, and counts them in the coalescing metrics", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const requests = Array.from({ length: 24 }, (_, i) => ({ name: `Deadline ${tag} ${i}`, domain: `deadline-${tag}-${i}.example.org` }));
    const held = await holdCreates(30_000);
    let outcomes;
    let statements: number;
    let served: number;
    try {
      statements = await metric("tenancy_coalesced_statements_total", `kind="create_tenant"`);
      served = await metric("tenancy_coalesced_requests_total", `kind="create_tenant"`);
      // As a typed client sends them: every call with a deadline, over gRPC.
      const running = Promise.all(requests.map((tenant) => outcomeOf(server.grpc.tenants.createTenant({ tenant }, { timeoutMs: 30_000 }))));
      await held.queued(1 + requests.length);
      await held.release();
      outcomes = await running;
    } finally {
      await held.release();
    }
    await held.blockers();
    expect(outcomes.filter((o) => o.ok)).toHaveLength(requests.length);
    // One statement for the 24 creates and the last blocker.
    expect(server.tenantInserter.stats.batches - held.batchesBefore).toBe(1);
    expect(await metric("tenancy_coalesced_statements_total", `kind="create_tenant"`)).toBe(statements + 1);
    expect(await metric("tenancy_coalesced_requests_total", `kind="create_tenant"`)).toBe(served + 1 + requests.length);
  });

  it("bounds the coalesced statement by its callers' deadline, and has the database cancel it", async () => {
    const holder = new pg.Client({ connectionString: server.databaseUrl });
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query(`LOCK TABLE "Tenants" IN SHARE MODE`);
    const late = [unique("late-grpc"), unique("late-connect")];
    try {
      for (const [i, client] of [server.grpc, server.connect].entries()) {
        const error = await rpcError(client.tenants.createTenant({ tenant: late[i] }, { timeoutMs: 300 }));
        expect(error.code).toBe(Code.DeadlineExceeded);
      }
      // Cancelled by PostgreSQL at the deadline, not left waiting for the lock.
      await waitUntil(async () => (await blockedInserts()) === 0, "the timed-out inserts cancelled");
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE name = ANY($1)`, [late.map((t) => t.name)]);
    expect(rows[0].n).toBe(0);
  });

  it("leaves out of the statement the callers whose deadline passed while they waited for it", async () => {
    const held = await holdCreates();
    const impatient = [unique("impatient-1"), unique("impatient-2"), unique("impatient-3")];
    const patient = [unique("patient-1"), unique("patient-2")];
    let patientOutcomes;
    const abandonedBefore = server.tenantInserter.stats.abandoned;
    const itemsBefore = server.tenantInserter.stats.items;
    try {
      const impatientOutcomes = Promise.all(impatient.map((tenant) => outcomeOf(server.grpc.tenants.createTenant({ tenant }, { timeoutMs: 200 }))));
      const running = Promise.all(patient.map((tenant) => outcomeOf(server.grpc.tenants.createTenant({ tenant }, { timeoutMs: 30_000 }))));
      await held.queued(1 + impatient.length + patient.length);
      // Answered at their deadline while still queued.
      expect((await impatientOutcomes).map((o) => (o.ok ? "created" : o.error.code))).toEqual(impatient.map(() => "DeadlineExceeded"));
      await held.release();
      patientOutcomes = await running;
    } finally {
      await held.release();
    }
    await held.blockers();
    expect(patientOutcomes.map((o) => o.ok)).toEqual([true, true]);
    expect(server.tenantInserter.stats.abandoned - abandonedBefore).toBe(impatient.length);
    // The next statement carried the patient ones and the last blocker only.
    expect(server.tenantInserter.stats.items - itemsBefore).toBe(1 + patient.length);
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE name = ANY($1)`, [impatient.map((t) => t.name)]);
    expect(rows[0].n).toBe(0);
  });

  it("retries row by row a batch that PostgreSQL refused for one row's data, giving each its own answer", async () => {
    // The statement for the whole batch fails on a check of some rows (class
    // 23); each tenant is then inserted alone, where those rows are refused
    // as a serialization failure (ABORTED) and the others are created.
    const removeRefusal = await refuseCoalescedRows(server, { table: "Tenants", when: "NEW.name LIKE 'Refused%'", batch: "23514", alone: "40001" });
    try {
      const tag = Math.random().toString(36).slice(2, 8);
      const requests = Array.from({ length: 20 }, (_, i) => ({
        name: `${i % 10 === 3 ? "Refused" : "Accepted"} ${tag} ${i}`,
        domain: `refuse-${tag}-${i}.example.org`,
      }));
      const held = await holdCreates();
      const outcomes = await held.together(
        requests.map((tenant) => server.grpc.tenants.createTenant({ tenant }).then(() => "created", (e: unknown) => describeError(e as never).code)),
      );
      await held.blockers();
      expect(server.tenantInserter.stats.batches - held.batchesBefore).toBe(1);
      expect(outcomes).toEqual(requests.map((r) => (r.name.startsWith("Refused") ? "Aborted" : "created")));
    } finally {
      await removeRefusal();
    }
  });

  it("does not retry row by row a batch refused for lack of resources: every caller gets UNAVAILABLE", async () => {
    // Class 53 (here too_many_connections) says nothing about any one row:
    // retrying each row alone would multiply the work of an overloaded
    // database. The trigger refuses the batch statement only, so a retry
    // row by row would have created the tenants.
    const removeRefusal = await refuseCoalescedRows(server, { table: "Tenants", when: "NEW.name LIKE 'Overloaded%'", batch: "53300" });
    try {
      const tag = Math.random().toString(36).slice(2, 8);
      const requests = Array.from({ length: 12 }, (_, i) => ({ name: `Overloaded ${tag} ${i}`, domain: `overloaded-${tag}-${i}.example.org` }));
      const held = await holdCreates();
      const outcomes = await held.together(
        requests.map((tenant) => server.grpc.tenants.createTenant({ tenant }).then(() => "created", (e: unknown) => describeError(e as never).code)),
      );
      await held.blockers();
      expect(server.tenantInserter.stats.batches - held.batchesBefore).toBe(1);
      expect(outcomes).toEqual(requests.map(() => "Unavailable"));
      const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE name LIKE $1`, [`Overloaded ${tag} %`]);
      expect(rows[0].n).toBe(0);
    } finally {
      await removeRefusal();
    }
  });
});

/** Coalesced inserts now waiting on a lock. */
async function blockedInserts(): Promise<number> {
  const { rows } = await server.sql.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock' AND starts_with(query, $1)`,
    [coalescedInsertStatement],
  );
  return rows[0].n;
}
