/**
 * The TenantDirectory of @tenancy/client against the real service and
 * database: the initial load, every change in order, read-your-writes,
 * restarts, EVENTS_EXPIRED, staleness, two instances, and the domain
 * normalization it shares with the service.
 *
 * "The service" a directory talks to sits behind a TCP proxy on a fixed
 * port, so that a test can stop it and start another instance at the same
 * address; writes go to another instance on the same database.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  createTenancyClient,
  reasonOf,
  Tenant_State as State,
  TenantDirectory,
  TenantDirectoryStaleError,
  type Tenant,
  type TenancyClient,
  type TenantDirectoryChange,
  type TenantDirectoryOptions,
} from "../../clients/node/src/index.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { TcpProxy } from "../support/tcp-proxy.js";

/** Short progress interval, so that staleness and catching up are quick to observe. */
const watch = { progressIntervalMs: 200 };

let writer: TestServer;
let writes: TenancyClient;
const cleanups: Array<() => unknown> = [];

beforeAll(async () => {
  writer = await startTestServer({ watch });
  writes = createTenancyClient({ baseUrl: writer.baseUrl });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  await writer?.close();
});

/** Another instance of the service on the writer's database, closed after the test (if the test did not). */
async function instance(): Promise<TestServer> {
  const server = await startTestServer({ databaseUrl: writer.databaseUrl, watch });
  let closed: Promise<void> | undefined;
  const close = () => (closed ??= server.close());
  cleanups.push(close);
  return { ...server, close };
}

function directoryOf(client: TenancyClient, options: TenantDirectoryOptions = {}): TenantDirectory {
  const directory = client.directory({ initialBackoffMs: 20, maxBackoffMs: 200, ...options });
  cleanups.push(() => directory.close());
  return directory;
}

/** Every tenant the service holds, deleted ones included, by id. */
async function serviceTable(): Promise<Map<string, Tenant>> {
  const all = new Map<string, Tenant>();
  let pageToken = "";
  do {
    const page = await writes.tenants.listTenants({ pageSize: 1000, pageToken, showDeleted: true });
    for (const tenant of page.tenants) all.set(tenant.id, tenant);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

function directoryTable(directory: TenantDirectory): Map<string, Tenant> {
  return new Map([...directory.tenants()].map((t) => [t.id, t]));
}

async function expectSameAsService(directory: TenantDirectory): Promise<void> {
  const expected = await serviceTable();
  // The service's own table may have moved on since; the directory must
  // have reached at least the position of the list it is compared with.
  await directory.waitFor(writes.lastEventSequence);
  const actual = directoryTable(directory);
  expect(actual.size).toBe(expected.size);
  for (const [id, tenant] of expected) expect(actual.get(id), id).toEqual(tenant);
}

let tag = 0;
const unique = (prefix = "dir") => {
  const t = `${prefix}-${process.pid}-${++tag}`;
  return { name: `Tenant ${t}`, domain: `${t}.directory.example` };
};

/** What the service answers for a domain or name: the tenant, or undefined (NOT_FOUND, INVALID_ARGUMENT). */
async function lookup(key: { case: "domain" | "name"; value: string }): Promise<Tenant | undefined> {
  try {
    return await writes.tenants.lookupTenant({ key });
  } catch (error) {
    if (error instanceof ConnectError && (error.code === Code.NotFound || error.code === Code.InvalidArgument)) return undefined;
    throw error;
  }
}

describe("TenantDirectory against the service", () => {
  it("loads 10,000 tenants, and answers for each by id, domain and name", async () => {
    await writer.sql.query(
      `INSERT INTO "Tenants" (tenant_id, name, domain, params, created_at, updated_at)
       SELECT gen_random_uuid(), 'Bulk Tenant ' || i, 'bulk-' || i || '.directory.example', jsonb_build_object('plan', 'pro', 'seats', i), now(), now()
         FROM generate_series(1, 10000) i`,
    );
    const directory = directoryOf(writes);
    await directory.ready();
    const expected = await serviceTable();
    expect(expected.size).toBeGreaterThanOrEqual(10_000);
    expect(directory.size).toBe(expected.size);
    for (const tenant of expected.values()) {
      expect(directory.get(tenant.id)).toEqual(tenant);
      expect(directory.byDomain(tenant.domain)?.id).toBe(tenant.id);
      expect(directory.byName(tenant.name.toUpperCase())?.id).toBe(tenant.id);
    }
    expect(directory.byDomain("BULK-1234.Directory.Example.")?.name).toBe("Bulk Tenant 1234");
    expect(directory.byDomain("bulk-10001.directory.example")).toBeUndefined();
  });

  it("applies every kind of change in order; a deleted tenant leaves byDomain exactly when LookupTenant stops finding it", async () => {
    const directory = directoryOf(writes);
    await directory.ready();
    const first = unique();
    // At each applied event: is the tenant found by its own domain and name?
    const applied: Array<{ type: string; sequence: bigint; byDomain: boolean; byName: boolean; state?: State }> = [];
    directory.onChange((change: TenantDirectoryChange) => {
      if (change.kind !== "event") return;
      const tenant = (change.tenant ?? change.previous)!;
      applied.push({
        type: change.event.type,
        sequence: change.event.sequence,
        byDomain: directory.byDomain(tenant.domain) !== undefined,
        byName: directory.byName(tenant.name) !== undefined,
        ...(change.tenant ? { state: change.tenant.state } : {}),
      });
    });
    let domain = first.domain;
    let name = first.name;
    const user = "0b0c7d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5";
    // Each write, then what the directory must show once it has applied it,
    // compared with what the service answers at that moment.
    const tenant = await writes.tenants.createTenant({ tenant: { ...first, params: { plan: "free" } } });
    const id = tenant.id;
    const check = async (expected: { present: boolean; state?: State }) => {
      await directory.waitFor(writes.lastEventSequence);
      const [byId, byDomain, byName] = await Promise.all([
        writes.tenants.getTenant({ id }).catch(() => undefined),
        lookup({ case: "domain", value: domain }),
        lookup({ case: "name", value: name }),
      ]);
      expect(directory.get(id)).toEqual(byId);
      expect(directory.byDomain(domain)).toEqual(byDomain);
      expect(directory.byName(name)).toEqual(byName);
      expect(byDomain !== undefined).toBe(expected.present);
      if (expected.state !== undefined) expect(directory.get(id)?.state).toBe(expected.state);
    };
    await check({ present: true, state: State.ACTIVE });
    const second = unique();
    await writes.tenants.updateTenant({ tenant: { id, name: second.name, domain: second.domain }, updateMask: { paths: ["name", "domain"] } });
    domain = second.domain;
    name = second.name;
    await check({ present: true });
    expect(directory.byDomain(first.domain)).toBeUndefined();
    expect(directory.byName(first.name)).toBeUndefined();
    await writes.tenants.updateTenant({ tenant: { id, params: { plan: "pro", seats: 5 } }, updateMask: { paths: ["params.plan", "params.seats"] } });
    await check({ present: true });
    expect(directory.get(id)?.params).toEqual({ plan: "pro", seats: 5 });
    await writes.tenants.updateTenant({ tenant: { id, state: State.SUSPENDED }, updateMask: { paths: ["state"] } });
    await check({ present: true, state: State.SUSPENDED });
    await writes.tenants.updateTenant({ tenant: { id, state: State.ACTIVE }, updateMask: { paths: ["state"] } });
    await check({ present: true, state: State.ACTIVE });
    const membership = await writes.memberships.createMembership({ membership: { tenantId: id, userId: user, roles: ["admin"] } });
    await writes.memberships.updateMembership({ membership: { id: membership.id, roles: ["admin", "billing"] }, updateMask: { paths: ["roles"] } });
    await check({ present: true });
    await writes.tenants.deleteTenant({ id, force: true });
    await check({ present: false, state: State.DELETED });
    await writes.tenants.undeleteTenant({ id });
    await check({ present: true, state: State.ACTIVE });
    await writes.tenants.deleteTenant({ id });
    await check({ present: false, state: State.DELETED });
    await writes.tenants.purgeTenant({ id });
    await check({ present: false });
    expect(directory.get(id)).toBeUndefined();

    expect(applied.map((a) => a.type)).toEqual([
      "tenant.created",
      "tenant.updated",
      "tenant.updated",
      "tenant.suspended",
      "tenant.activated",
      "tenant.deleted",
      "tenant.undeleted",
      "tenant.deleted",
      "tenant.purged",
    ]);
    // In sequence order, and found by domain and name exactly while not deleted.
    expect(applied.map((a) => a.sequence)).toEqual([...applied.map((a) => a.sequence)].sort((a, b) => (a < b ? -1 : 1)));
    expect(applied.map((a) => a.byDomain)).toEqual([true, true, true, true, true, false, true, false, false]);
    expect(applied.map((a) => a.byName)).toEqual(applied.map((a) => a.byDomain));
    expect(applied[3]!.state).toBe(State.SUSPENDED);
  });

  it("waitFor(sequence) after a write: the directory shows the write (read-your-writes), on every protocol", async () => {
    const directory = directoryOf(writes);
    await directory.ready();
    for (const protocol of ["grpc", "connect", "grpc-web"] as const) {
      const client = createTenancyClient({ baseUrl: writer.baseUrl, protocol });
      for (let i = 0; i < 10; i++) {
        const input = unique(protocol);
        let header: string | null = null;
        const created = await client.tenants.createTenant({ tenant: input }, { onHeader: (h) => (header = h.get("tenancy-event-sequence")) });
        expect(BigInt(header!)).toBe(client.lastEventSequence);
        await directory.waitFor(header!);
        expect(directory.byDomain(input.domain)).toEqual(created);
        const renamed = await client.tenants.updateTenant({ tenant: { id: created.id, name: `${input.name} renamed` }, updateMask: { paths: ["name"] } });
        await directory.waitFor(client.lastEventSequence);
        expect(directory.get(created.id)).toEqual(renamed);
      }
    }
  });

  it("resumes after the service is restarted mid-stream, applying every event once, in order", async () => {
    const first = await instance();
    const proxy = await TcpProxy.start(first.port);
    cleanups.push(() => proxy.close());
    const directory = directoryOf(createTenancyClient({ baseUrl: proxy.url }));
    await directory.ready();
    const startedAt = directory.sequence;
    const sequences: bigint[] = [];
    directory.onChange((c) => c.kind === "event" && sequences.push(c.event.sequence));

    // Writes run all along, on the writer instance.
    let writing = true;
    const created: string[] = [];
    const writer$ = (async () => {
      while (writing) created.push((await writes.tenants.createTenant({ tenant: unique("restart") })).id);
    })();
    await vi.waitFor(() => expect(sequences.length).toBeGreaterThan(5), { timeout: 10_000 });
    await first.close();
    const seenWhileDown = sequences.length;
    await vi.waitFor(() => expect(created.length).toBeGreaterThan(seenWhileDown + 20), { timeout: 10_000 });
    const second = await instance();
    proxy.retarget(second.port);
    await vi.waitFor(() => expect(sequences.length).toBeGreaterThan(seenWhileDown + 20), { timeout: 10_000 });
    writing = false;
    await writer$;
    await directory.waitFor(writes.lastEventSequence);

    expect(directory.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(directory.stats.loads).toBe(1);
    // Exactly the tenant events the feed holds after the start, each once, in order.
    const expected: bigint[] = [];
    let pageToken = "";
    do {
      const page = await writes.events.listEvents({ pageToken, pageSize: 1000, types: ["tenant.created"] });
      expected.push(...page.events.filter((e) => e.sequence > startedAt && e.sequence <= writes.lastEventSequence).map((e) => e.sequence));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(sequences).toEqual(expected);
    for (const id of created) expect(directory.get(id)?.id).toBe(id);
    await expectSameAsService(directory);
  });

  it("on EVENTS_EXPIRED lists again while reads go on: no reader sees a tenant missing that existed before and after", async () => {
    const { rows: stable } = await writer.sql.query<{ id: string; domain: string }>(
      `INSERT INTO "Tenants" (tenant_id, name, domain, params, created_at, updated_at)
       SELECT gen_random_uuid(), 'Stable ' || i, 'stable-' || i || '.directory.example', '{}', now(), now() FROM generate_series(1, 200) i
       RETURNING tenant_id AS id, domain`,
    );
    const leaving = await writes.tenants.createTenant({ tenant: unique("leaving") });
    const server = await instance();
    const proxy = await TcpProxy.start(server.port);
    cleanups.push(() => proxy.close());
    const errors: unknown[] = [];
    // Small pages: the reload takes many round trips, and reads run between them.
    const directory = directoryOf(createTenancyClient({ baseUrl: proxy.url }), { pageSize: 500, onError: (e) => errors.push(e) });
    await directory.ready();
    const changes: TenantDirectoryChange[] = [];
    directory.onChange((c) => changes.push(c));

    await proxy.down();
    // While it is away: changes, then the events it would resume from are pruned.
    const arriving = await writes.tenants.createTenant({ tenant: unique("arriving") });
    await writes.tenants.deleteTenant({ id: leaving.id });
    await writes.tenants.purgeTenant({ id: leaving.id });
    const latest = writes.lastEventSequence;
    await writer.sql.query(`DELETE FROM "Events" WHERE sequence < $1`, [latest.toString()]);
    await writer.sql.query(`UPDATE "EventFeed" SET pruned_through = $1`, [(latest - 1n).toString()]);

    let reads = 0;
    let readsDuringReload = 0;
    const problems: string[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) {
        for (const tenant of stable) {
          if (directory.byDomain(tenant.domain)?.id !== tenant.id) problems.push(`${tenant.domain} missing at sequence ${directory.sequence}`);
        }
        reads++;
        if (errors.some((e) => reasonOf(e) === "EVENTS_EXPIRED") && !changes.some((c) => c.kind === "reloaded")) readsDuringReload++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await proxy.up();
    await vi.waitFor(() => expect(changes.some((c) => c.kind === "reloaded")).toBe(true), { timeout: 20_000 });
    reading = false;
    await reader;

    expect(problems).toEqual([]);
    expect(readsDuringReload).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(readsDuringReload);
    expect(directory.stats.loads).toBe(2);
    expect(directory.byDomain(arriving.domain)?.id).toBe(arriving.id);
    expect(directory.get(leaving.id)).toBeUndefined();
    await expectSameAsService(directory);
  });

  it("when the service is stopped, lookups throw once maxStalenessMs has passed (or ask another instance), and recover when it is back", async () => {
    const server = await instance();
    const proxy = await TcpProxy.start(server.port);
    cleanups.push(() => proxy.close());
    const proxied = createTenancyClient({ baseUrl: proxy.url, retry: false });
    const strict = directoryOf(proxied, { maxStalenessMs: 1_000 });
    // The feed through the proxy; RPCs (the list, and the fallback) to the writer instance.
    const fallback = new TenantDirectory({ events: proxied.events, tenants: writes.tenants }, { maxStalenessMs: 1_000, whenStale: "rpc", initialBackoffMs: 20, maxBackoffMs: 200 });
    cleanups.push(() => fallback.close());
    await Promise.all([strict.ready(), fallback.ready()]);
    const known = await writes.tenants.createTenant({ tenant: unique("stale") });
    await strict.waitFor(writes.lastEventSequence);
    await fallback.waitFor(writes.lastEventSequence);
    // A quiet stream stays fresh (progress messages every 200 ms): watched
    // for longer than maxStalenessMs.
    for (const quietSince = Date.now(); Date.now() - quietSince < 1_500; ) {
      expect(strict.isStale()).toBe(false);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    await proxy.down();
    await server.close();
    await vi.waitFor(() => expect(strict.isStale()).toBe(true), { timeout: 10_000, interval: 50 });
    expect(() => strict.byDomain(known.domain)).toThrow(TenantDirectoryStaleError);
    expect(() => strict.get(known.id)).toThrow(/has not heard from the service for \d+ ms \(maxStalenessMs 1000\)/);
    await expect(strict.resolve({ domain: known.domain })).rejects.toThrow(TenantDirectoryStaleError);
    await vi.waitFor(() => expect(fallback.isStale()).toBe(true), { timeout: 10_000, interval: 50 });
    // Written while the feed is away: the fallback's RPC sees it, memory could not.
    const later = await writes.tenants.createTenant({ tenant: unique("stale") });
    expect((await fallback.resolve({ domain: later.domain }))?.id).toBe(later.id);
    expect((await fallback.resolve({ id: known.id }))?.id).toBe(known.id);
    expect(await fallback.resolve({ name: "no such tenant" })).toBeUndefined();
    expect(() => fallback.byDomain(later.domain)).toThrow(TenantDirectoryStaleError);

    const restarted = await instance();
    proxy.retarget(restarted.port);
    await proxy.up();
    await strict.waitFor(writes.lastEventSequence);
    expect(strict.isStale()).toBe(false);
    expect(strict.byDomain(later.domain)?.id).toBe(later.id);
    expect(strict.stats.loads).toBe(1);
  });

  it("two directories on two instances converge to the service's table after concurrent writes on both", async () => {
    const [a, b] = await Promise.all([instance(), instance()]);
    const clientA = createTenancyClient({ baseUrl: a.baseUrl });
    const clientB = createTenancyClient({ protocol: "connect", baseUrl: b.baseUrl });
    const [directoryA, directoryB] = [directoryOf(clientA), directoryOf(clientB)];
    await Promise.all([directoryA.ready(), directoryB.ready()]);
    const work = async (client: TenancyClient, label: string) => {
      for (let i = 0; i < 30; i++) {
        const tenant = await client.tenants.createTenant({ tenant: unique(label) });
        if (i % 3 === 0) await client.tenants.updateTenant({ tenant: { id: tenant.id, params: { i } }, updateMask: { paths: ["params.i"] } });
        if (i % 5 === 0) await client.tenants.deleteTenant({ id: tenant.id });
        if (i % 10 === 0) await client.tenants.purgeTenant({ id: tenant.id });
        if (i % 7 === 0) await client.tenants.updateTenant({ tenant: { id: tenant.id, state: State.SUSPENDED }, updateMask: { paths: ["state"] } }).catch(() => {});
      }
    };
    await Promise.all([work(clientA, "conv-a"), work(clientB, "conv-b"), work(clientA, "conv-a2"), work(clientB, "conv-b2")]);
    const last = clientA.lastEventSequence > clientB.lastEventSequence ? clientA.lastEventSequence : clientB.lastEventSequence;
    await Promise.all([directoryA.waitFor(last), directoryB.waitFor(last)]);
    const expected = await serviceTable();
    for (const directory of [directoryA, directoryB]) {
      const table = directoryTable(directory);
      expect(table.size).toBe(expected.size);
      for (const [id, tenant] of expected) expect(table.get(id), id).toEqual(tenant);
    }
  });
});

describe("domain normalization: the directory and the service agree", () => {
  // Labels of letters from several scripts (IDNs), digits and hyphens, in any case.
  const letter = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-üÜßéÉøåçñ" + "δΔλжЖяß日本語한국");
  const label = fc.array(letter, { minLength: 1, maxLength: 12 }).map((chars) => chars.join(""));
  const domain = fc.array(label, { minLength: 1, maxLength: 3 }).map((labels) => [...labels, "norm", "example"].join("."));
  const spelling = fc.record({
    upper: fc.boolean(),
    trailingDot: fc.boolean(),
    spaces: fc.boolean(),
  });

  it("for every generated domain and spelling of it, IDNs included", async () => {
    const directory = directoryOf(writes);
    await directory.ready();
    const created = new Map<string, string>();
    await fc.assert(
      fc.asyncProperty(domain, spelling, async (raw, how) => {
        if (!created.has(raw)) {
          // The service decides whether it is a valid host name (and stores its normal form).
          const answer: Tenant | ConnectError = await writes.tenants
            .createTenant({ tenant: { name: `Norm ${created.size} ${raw}`.slice(0, 200), domain: raw } })
            .catch((e: unknown) => ConnectError.from(e));
          if (answer instanceof ConnectError && answer.code !== Code.InvalidArgument && answer.code !== Code.AlreadyExists) throw answer;
          created.set(raw, answer instanceof ConnectError ? "" : answer.id);
          await directory.waitFor(writes.lastEventSequence);
        }
        let query = how.upper ? raw.toUpperCase() : raw;
        if (how.trailingDot) query += ".";
        if (how.spaces) query = `  ${query} `;
        const expected = await lookup({ case: "domain", value: query });
        expect(directory.byDomain(query)?.id).toBe(expected?.id);
      }),
      { numRuns: 300 },
    );
    // The set exercised both outcomes, and names beyond ASCII.
    const ids = [...created.values()];
    expect(ids.filter((id) => id !== "").length).toBeGreaterThan(10);
    expect([...created.entries()].some(([raw, id]) => id !== "" && /[^\x00-\x7f]/.test(raw))).toBe(true);
  });
});
