import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tenant_State as State } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { Watcher } from "../support/watch.js";

/**
 * Order without gaps: a watcher sees every committed event, in commit order,
 * and never one behind its position.
 */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ watch: { progressIntervalMs: 200 } });
});
afterAll(async () => {
  await server?.close();
});

const tag = () => Math.random().toString(36).slice(2, 10);

async function latest(): Promise<bigint> {
  return (await server.grpc.events.listEvents({ pageSize: 1 })).latestSequence;
}

/** Sessions of the test database that wait on an advisory lock (the event sequence's). */
async function waitingOnTheSequence(): Promise<number> {
  const { rows } = await server.sql.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`,
  );
  return Number(rows[0]!.n);
}

async function eventually(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("commit order", () => {
  it("a writer held open across another's commit: the later writer is numbered after it, and the watcher skips nothing", async () => {
    const watcher = new Watcher(server.grpc, { afterSequence: await latest() });
    await watcher.until(() => watcher.progress.length > 0);

    // Writer A: changes a tenant in a transaction it keeps open.
    const early = await server.grpc.tenants.createTenant({ tenant: { name: `Early ${tag()}`, domain: `early-${tag()}.order.example` } });
    await watcher.seen(BigInt((await server.grpc.events.listEvents({ pageSize: 1 })).latestSequence));
    const before = watcher.events.length;
    const a = await server.sql.connect();
    try {
      await a.query("BEGIN");
      await a.query(`UPDATE "Tenants" SET params = '{"held": true}' WHERE tenant_id = $1`, [early.id]);
      const { rows } = await a.query<{ sequence: string }>(`SELECT current_setting('tenancy.event_sequence') AS sequence`);
      const sequenceOfA = BigInt(rows[0]!.sequence);

      // Writer B: an RPC that starts after A took its number and would commit
      // first if it could. It waits for A instead.
      let sequenceOfB = "";
      const b = server.grpc.tenants.createTenant(
        { tenant: { name: `Late ${tag()}`, domain: `late-${tag()}.order.example` } },
        { onHeader: (h) => (sequenceOfB = h.get("tenancy-event-sequence") ?? "") },
      );
      await eventually(async () => (await waitingOnTheSequence()) === 1);
      // Neither is visible yet: A has not committed, B has no number.
      expect(watcher.events.length).toBe(before);
      expect(await latest()).toBeLessThan(sequenceOfA);

      await a.query("COMMIT");
      const late = await b;
      expect(BigInt(sequenceOfB)).toBeGreaterThan(sequenceOfA);
      await watcher.seen(BigInt(sequenceOfB));
      expect(watcher.events.slice(before).map((e) => [e.sequence, e.tenantId])).toEqual([
        [sequenceOfA, early.id],
        [BigInt(sequenceOfB), late.id],
      ]);
    } finally {
      await a.query("ROLLBACK").catch(() => {});
      a.release();
    }
    await watcher.close();
  });

  it("16 concurrent writers: the watcher sees every acknowledged write exactly once, in sequence order", async () => {
    const seconds = Number(process.env.EVENTS_ORDER_SECONDS ?? 10);
    const start = await latest();
    const watcher = new Watcher(server.grpc, { afterSequence: start });
    const acknowledged: bigint[] = [];
    const record = { onHeader: (h: Headers) => acknowledged.push(BigInt(h.get("tenancy-event-sequence")!)) };
    const until = Date.now() + seconds * 1000;
    const writer = async (w: number) => {
      const clients = w % 2 === 0 ? server.grpc : server.connect;
      let n = 0;
      while (Date.now() < until) {
        n++;
        const name = `W${w} ${n} ${tag()}`;
        const domain = `w${w}-${n}-${tag()}.order.example`;
        // The paths vary: coalesced, request_id, deadline.
        const tenant =
          n % 3 === 0
            ? await clients.tenants.createTenant({ tenant: { name, domain }, requestId: crypto.randomUUID() }, record)
            : n % 3 === 1
              ? await clients.tenants.createTenant({ tenant: { name, domain } }, record)
              : await clients.tenants.createTenant({ tenant: { name, domain } }, { ...record, timeoutMs: 10_000 });
        await clients.tenants.updateTenant({ tenant: { id: tenant.id, params: { n } }, updateMask: { paths: ["params.n"] } }, record);
        const member = await clients.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } }, record);
        if (n % 2 === 0) {
          await clients.memberships.deleteMembership({ id: member.id }, record);
          await clients.tenants.updateTenant({ tenant: { id: tenant.id, state: State.SUSPENDED }, updateMask: { paths: ["state"] } }, record);
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, (_, w) => writer(w)));
    const highest = acknowledged.reduce((a, b) => (a > b ? a : b), 0n);
    await watcher.seen(highest, 30_000);
    await watcher.close();

    const seen = watcher.events.map((e) => e.sequence);

    // Strictly increasing: in order, no repeats.
    for (let i = 1; i < seen.length; i++) expect(seen[i]! > seen[i - 1]!).toBe(true);
    const seenSet = new Set(seen);
    const missing = acknowledged.filter((s) => !seenSet.has(s));
    expect(missing, "acknowledged writes the watcher never saw").toEqual([]);
    // Nothing else happened meanwhile, so the watcher saw exactly the acknowledged writes.
    expect(seen.filter((s) => s <= highest).sort()).toEqual([...acknowledged].sort());
    expect(acknowledged.length).toBeGreaterThan(100);
  }, 120_000);
});
