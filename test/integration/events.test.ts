import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { Tenant_State as State, type Event } from "../../src/client.js";
import { purgeExpiredTenants } from "../../src/tenants/tenant.purger.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { holdCoalescedCreates, refuseCoalescedRows } from "../support/coalescing.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

function unique() {
  const tag = Math.random().toString(36).slice(2, 10);
  return { name: `Feed ${tag}`, domain: `${tag}.feed.example` };
}

const actor = "5b0c6bb7-6c3a-4d9c-9d47-0d3f2a9a1e01";
const asActor = { headers: { "x-actor-id": actor } };

/** Calls `write`, returning its response and the sequence its response header carried. */
async function withSequence<T>(write: (options: { onHeader: (h: Headers) => void; headers: Record<string, string> }) => Promise<T>) {
  let header: string | null = null;
  const response = await write({ onHeader: (h) => (header = h.get("tenancy-event-sequence")), headers: { "x-actor-id": actor } });
  expect(header, "the write's response carries tenancy-event-sequence").toMatch(/^\d+$/);
  return { response, sequence: BigInt(header!) };
}

/** Every event after `after`, oldest first (all pages). */
async function eventsAfter(after: bigint, tenantId?: string): Promise<Event[]> {
  const all: Event[] = [];
  let pageToken = "";
  do {
    const page = await server.grpc.events.listEvents({ tenantId, pageToken, pageSize: 100 });
    all.push(...page.events.filter((e) => e.sequence > after));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return all;
}

async function latest(): Promise<bigint> {
  return (await server.grpc.events.listEvents({ pageSize: 1, orderBy: "sequence desc" })).latestSequence;
}

describe("every write writes its event, once, in its transaction", () => {
  it("CreateTenant on each path: coalesced, with a request_id, with a deadline", async () => {
    const before = await latest();
    const coalesced = await withSequence((o) => server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { plan: "pro" } } }, o));
    const requestId = crypto.randomUUID();
    const retried = unique();
    const withRequestId = await withSequence((o) => server.connect.tenants.createTenant({ tenant: retried, requestId }, o));
    const withDeadline = await withSequence((o) => server.grpc.tenants.createTenant({ tenant: unique() }, { ...o, timeoutMs: 5_000 }));

    const events = await eventsAfter(before);
    expect(events.map((e) => [e.type, e.tenantId])).toEqual([
      ["tenant.created", coalesced.response.id],
      ["tenant.created", withRequestId.response.id],
      ["tenant.created", withDeadline.response.id],
    ]);
    expect(events.map((e) => e.sequence)).toEqual([coalesced.sequence, withRequestId.sequence, withDeadline.sequence]);
    for (const event of events) expect(event.actor).toBe(actor);
    expect(events[0]!.resource).toMatchObject({ case: "tenant", value: { id: coalesced.response.id, params: { plan: "pro" }, etag: '"1"' } });
    expect(events[1]!.requestId).toBe(requestId);
    expect(events[0]!.requestId).toBe("");
    expect(events[0]!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(events[0]!.time).toBeDefined();

    // A retry with the same request_id creates nothing, writes no event, and answers with the same sequence.
    const retry = await withSequence((o) => server.connect.tenants.createTenant({ tenant: retried, requestId }, o));
    expect(retry.response.id).toBe(withRequestId.response.id);
    expect(retry.sequence).toBe(withRequestId.sequence);
    expect(await latest()).toBe(withDeadline.sequence);
  });

  it("UpdateTenant: the changed fields, params keys down to the deepest, state changes as their own types", async () => {
    const created = await server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { theme: { color: "red", font: "serif" }, seats: 5 } } });
    const before = await latest();
    const renamed = await withSequence((o) =>
      server.grpc.tenants.updateTenant({ tenant: { id: created.id, ...unique() }, updateMask: { paths: ["name", "domain"] } }, o),
    );
    const keyed = await withSequence((o) =>
      server.connect.tenants.updateTenant(
        { tenant: { id: created.id, params: { theme: { color: "blue" }, "odd.key": 1 } }, updateMask: { paths: ["params.theme.color", "params.`odd.key`"] } },
        o,
      ),
    );
    const replaced = await withSequence((o) =>
      server.grpc.tenants.updateTenant({ tenant: { id: created.id, params: { seats: 6 } }, updateMask: { paths: ["params"] } }, o),
    );
    const suspended = await withSequence((o) =>
      server.grpc.tenants.updateTenant({ tenant: { id: created.id, state: State.SUSPENDED }, updateMask: { paths: ["state"] } }, o),
    );
    const activated = await withSequence((o) =>
      server.grpc.tenants.updateTenant({ tenant: { id: created.id, state: State.ACTIVE }, updateMask: { paths: ["state"] } }, o),
    );
    const events = await eventsAfter(before, created.id);
    expect(events.map((e) => [e.type, e.changedFields?.paths ?? []])).toEqual([
      ["tenant.updated", ["name", "domain"]],
      ["tenant.updated", ["params.`odd.key`", "params.theme.color"]],
      ["tenant.updated", ["params.`odd.key`", "params.seats", "params.theme"]],
      ["tenant.suspended", ["state"]],
      ["tenant.activated", ["state"]],
    ]);
    expect(events.map((e) => e.sequence)).toEqual([renamed, keyed, replaced, suspended, activated].map((w) => w.sequence));
    for (const event of events) expect(event.actor).toBe(actor);
    // The resource after the change.
    expect(events[1]!.resource).toMatchObject({ case: "tenant", value: { params: { theme: { color: "blue", font: "serif" }, "odd.key": 1, seats: 5 } } });
    expect(events[4]!.resource.value).toMatchObject({ state: State.ACTIVE, etag: activated.response.etag });
  });

  it("a forced delete: one membership.deleted per membership, then tenant.deleted; undelete; purge", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    const members = await Promise.all(
      [1, 2, 3].map(() => server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } })),
    );
    const before = await latest();
    const deleted = await withSequence((o) => server.grpc.tenants.deleteTenant({ id: tenant.id, force: true }, o));
    let events = await eventsAfter(before, tenant.id);
    expect(events.map((e) => e.type)).toEqual(["membership.deleted", "membership.deleted", "membership.deleted", "tenant.deleted"]);
    expect(new Set(events.slice(0, 3).map((e) => (e.resource.case === "membership" ? e.resource.value.id : undefined)))).toEqual(new Set(members.map((m) => m.id)));
    expect(events[3]!.sequence).toBe(deleted.sequence);
    expect(events[3]!.resource.value).toMatchObject({ id: tenant.id, state: State.DELETED });
    for (const event of events) expect(event.actor).toBe(actor);

    const undeleted = await withSequence((o) => server.grpc.tenants.undeleteTenant({ id: tenant.id }, o));
    await server.grpc.tenants.deleteTenant({ id: tenant.id });
    const purged = await withSequence((o) => server.connect.tenants.purgeTenant({ id: tenant.id }, o));
    events = await eventsAfter(deleted.sequence, tenant.id);
    expect(events.map((e) => e.type)).toEqual(["tenant.undeleted", "tenant.deleted", "tenant.purged"]);
    expect(events[0]!.sequence).toBe(undeleted.sequence);
    expect(events[2]!.sequence).toBe(purged.sequence);
    // The last state of a purged tenant.
    expect(events[2]!.resource.value).toMatchObject({ id: tenant.id, state: State.DELETED, name: undeleted.response.name });
  });

  it("the purge job writes tenant.purged with no actor, and the removed memberships' events first", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    await server.grpc.tenants.deleteTenant({ id: tenant.id });
    await server.sql.query(`UPDATE "Tenants" SET purge_at = now() - interval '1 second' WHERE tenant_id = $1`, [tenant.id]);
    const before = await latest();
    const purged = await purgeExpiredTenants(server.orm.em.fork());
    expect(purged).toContain(tenant.id);
    const events = (await eventsAfter(before)).filter((e) => e.tenantId === tenant.id);
    expect(events.map((e) => [e.type, e.actor])).toEqual([["tenant.purged", ""]]);
  });

  it("memberships: created (coalesced and with a request_id), roles updated, deleted; the last-admin refusal writes nothing", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    const before = await latest();
    const admin = await withSequence((o) =>
      server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: ["admin"] } }, o),
    );
    const requestId = crypto.randomUUID();
    const member = await withSequence((o) =>
      server.connect.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() }, requestId }, o),
    );
    const promoted = await withSequence((o) =>
      server.grpc.memberships.updateMembership({ membership: { id: member.response.id, roles: ["admin", "editor"] } }, o),
    );
    const removed = await withSequence((o) => server.grpc.memberships.deleteMembership({ id: admin.response.id }, o));
    const refused = await rpcError(server.grpc.memberships.deleteMembership({ id: member.response.id }, asActor));
    expect(describeError(refused)).toEqual({ code: "FailedPrecondition", reason: "LAST_ADMIN" });

    const events = await eventsAfter(before, tenant.id);
    expect(events.map((e) => [e.type, e.sequence, e.changedFields?.paths ?? []])).toEqual([
      ["membership.created", admin.sequence, []],
      ["membership.created", member.sequence, []],
      ["membership.updated", promoted.sequence, ["roles"]],
      ["membership.deleted", removed.sequence, []],
    ]);
    expect(events[1]!.requestId).toBe(requestId);
    expect(events[2]!.resource).toMatchObject({ case: "membership", value: { id: member.response.id, roles: ["admin", "editor"] } });
    expect(events[3]!.resource.value).toMatchObject({ id: admin.response.id, roles: ["admin"] });
    for (const event of events) expect(event.actor).toBe(actor);
  });

  it("many creates coalesced into one statement each carry their own event's sequence, on the batch path and row by row", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    // A batch statement refused for one row's data (class 23) sends every
    // row alone, where this trigger lets them through: the second half of
    // the test takes the row-by-row path, whose sequence comes from the
    // row's own transaction.
    const removeRefusal = await refuseCoalescedRows(server, { table: "Tenants", when: "NEW.name LIKE 'Alone%'", batch: "23514" });
    try {
      for (const prefix of ["Batched", "Alone"]) {
        const held = await holdCoalescedCreates(server, "tenants", () => server.grpc.tenants.createTenant({ tenant: unique() }));
        const created = await held.together(
          Array.from({ length: 12 }, (_, i) =>
            withSequence((o) => server.grpc.tenants.createTenant({ tenant: { ...unique(), name: `${prefix} ${i} ${Math.random()}` } }, o)),
          ),
        );
        await held.blockers();
        const events = await Promise.all(created.map((c) => eventsAfter(c.sequence - 1n, c.response.id)));
        for (const [i, c] of created.entries()) {
          expect(events[i]!.map((e) => [e.type, e.sequence]), `${prefix} ${i}`).toEqual([["tenant.created", c.sequence]]);
        }
        expect(new Set(created.map((c) => c.sequence)).size).toBe(12);
      }
    } finally {
      await removeRefusal();
    }

    const held = await holdCoalescedCreates(server, "memberships", () =>
      server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } }),
    );
    const memberships = await held.together(
      Array.from({ length: 12 }, () =>
        withSequence((o) => server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } }, o)),
      ),
    );
    await held.blockers();
    const created = new Map((await eventsAfter(0n, tenant.id)).flatMap((e) => (e.resource.case === "membership" ? [[e.resource.value.id, e.sequence] as const] : [])));
    for (const m of memberships) expect(created.get(m.response.id)).toBe(m.sequence);
  });

  it("a write that fails or rolls back leaves no event", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    const before = await latest();
    await rpcError(server.grpc.tenants.createTenant({ tenant: { name: tenant.name, domain: unique().domain } }));
    await rpcError(server.grpc.tenants.createTenant({ tenant: { name: tenant.name, domain: unique().domain }, requestId: crypto.randomUUID() }));
    await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, name: "x", etag: '"99"' }, updateMask: { paths: ["name"] } }));
    await rpcError(server.grpc.tenants.purgeTenant({ id: tenant.id }));
    await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    const refused = await rpcError(server.grpc.tenants.deleteTenant({ id: tenant.id }));
    expect(describeError(refused)).toMatchObject({ reason: "TENANT_HAS_MEMBERSHIPS" });
    // A direct transaction that rolls back.
    const client = await server.sql.connect();
    try {
      await client.query("BEGIN");
      await client.query(`UPDATE "Tenants" SET name = 'rolled back' WHERE tenant_id = $1`, [tenant.id]);
      await client.query("ROLLBACK");
    } finally {
      client.release();
    }
    const events = await eventsAfter(before);
    expect(events.map((e) => e.type)).toEqual(["membership.created"]);
  });
});

describe("ListEvents", () => {
  it("filters by tenant, type, actor and time, pages both ways, and refuses bad arguments", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() }, asActor);
    const startTime = new Date();
    for (let i = 0; i < 5; i++) {
      await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { i } }, updateMask: { paths: ["params.i"] } }, asActor);
    }
    const other = crypto.randomUUID();
    await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { i: 99 } }, updateMask: { paths: ["params.i"] } }, { headers: { "x-actor-id": other } });

    const oldestFirst: bigint[] = [];
    let pageToken = "";
    do {
      const page = await server.connect.events.listEvents({ tenantId: tenant.id, types: ["tenant.updated"], pageSize: 2, pageToken });
      expect(page.events.length).toBeLessThanOrEqual(2);
      oldestFirst.push(...page.events.map((e) => e.sequence));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(oldestFirst).toHaveLength(6);
    expect([...oldestFirst].sort((a, b) => (a < b ? -1 : 1))).toEqual(oldestFirst);

    const newest = await server.grpc.events.listEvents({ tenantId: tenant.id, orderBy: "sequence desc", pageSize: 3 });
    expect(newest.events.map((e) => e.sequence)).toEqual([...oldestFirst].reverse().slice(0, 3));
    const next = await server.grpc.events.listEvents({ tenantId: tenant.id, orderBy: "sequence desc", pageSize: 3, pageToken: newest.nextPageToken });
    expect(next.events.map((e) => e.sequence)).toEqual([...oldestFirst].reverse().slice(3, 6));

    const byOther = await server.grpc.events.listEvents({ tenantId: tenant.id, actor: other });
    expect(byOther.events.map((e) => e.type)).toEqual(["tenant.updated"]);
    const created = await server.grpc.events.listEvents({ tenantId: tenant.id, endTime: { seconds: BigInt(Math.floor(startTime.getTime() / 1000) - 60), nanos: 0 } });
    expect(created.events).toEqual([]);
    const since = await server.grpc.events.listEvents({ tenantId: tenant.id, startTime: { seconds: BigInt(Math.floor(startTime.getTime() / 1000) - 60), nanos: 0 } });
    expect(since.events.map((e) => e.type)).toEqual(["tenant.created", ...Array(6).fill("tenant.updated")]);
    expect(since.latestSequence).toBeGreaterThanOrEqual(oldestFirst[5]!);

    const bad = await rpcError(
      server.grpc.events.listEvents({ tenantId: "nope", types: ["tenant.exploded"], actor: "x", orderBy: "time", pageSize: -1 }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(describeError(bad).fields).toEqual(["tenant_id", "actor", "types[0]", "order_by"]);
    // Ordered numerically over every event so far, both ways (well past 9 and 10, where text order would differ).
    const all = await server.grpc.events.listEvents({ pageSize: 1000 });
    expect(all.events.length).toBeGreaterThan(20);
    for (let i = 1; i < all.events.length; i++) expect(all.events[i]!.sequence > all.events[i - 1]!.sequence).toBe(true);
    const desc = await server.grpc.events.listEvents({ pageSize: 1000, orderBy: "sequence desc" });
    expect(desc.events.map((e) => e.sequence)).toEqual(all.events.map((e) => e.sequence).reverse());
    const wrongToken = await rpcError(server.grpc.events.listEvents({ tenantId: tenant.id, pageToken: newest.nextPageToken }));
    expect(describeError(wrongToken)).toEqual({ code: "InvalidArgument", fields: ["page_token"] });
  });
});
