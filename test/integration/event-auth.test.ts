import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { createTenancyClients, type Event, type TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { rpcError } from "../support/errors.js";
import { clientsWithToken, hsToken, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET } from "../support/tokens.js";
import { Watcher } from "../support/watch.js";

/**
 * Who sees which events, by the rules of the reads: a tenant's events for its
 * members, a membership's for its tenant's administrators and its member.
 */
const actors = ["platformAdmin", "tenantAdmin", "member", "otherAdmin", "stranger"] as const;
type Actor = (typeof actors)[number];

let server: TestServer;
const ids = {} as Record<Actor, string>;
const as = {} as Record<Actor, TenancyClients>;
let T: { id: string };
let U: { id: string };
let start: bigint;
/** The membership ids: tenantAdmin's and member's of T, Z's (another member of T), otherAdmin's of U. */
const m = {} as Record<"tenantAdmin" | "member" | "z" | "otherAdmin", string>;

const tag = () => Math.random().toString(36).slice(2, 10);

beforeAll(async () => {
  server = await startTestServer({
    auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET }, issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
    watch: { progressIntervalMs: 200 },
  });
  for (const actor of actors) {
    ids[actor] = crypto.randomUUID();
    as[actor] = clientsWithToken(server.baseUrl, await hsToken({ sub: ids[actor], admin: actor === "platformAdmin" }));
  }
  const pa = as.platformAdmin;
  start = (await pa.events.listEvents({ pageSize: 1 })).latestSequence;
  T = await pa.tenants.createTenant({ tenant: { name: `Events T ${tag()}`, domain: `t-${tag()}.events.example` } });
  U = await pa.tenants.createTenant({ tenant: { name: `Events U ${tag()}`, domain: `u-${tag()}.events.example` } });
  m.tenantAdmin = (await pa.memberships.createMembership({ membership: { tenantId: T.id, userId: ids.tenantAdmin, roles: ["admin"] } })).id;
  m.member = (await pa.memberships.createMembership({ membership: { tenantId: T.id, userId: ids.member } })).id;
  m.z = (await pa.memberships.createMembership({ membership: { tenantId: T.id, userId: crypto.randomUUID() } })).id;
  m.otherAdmin = (await pa.memberships.createMembership({ membership: { tenantId: U.id, userId: ids.otherAdmin, roles: ["admin"] } })).id;
  await pa.tenants.updateTenant({ tenant: { id: T.id, params: { a: 1 } }, updateMask: { paths: ["params.a"] } });
  await pa.tenants.updateTenant({ tenant: { id: U.id, params: { a: 1 } }, updateMask: { paths: ["params.a"] } });
});
afterAll(async () => {
  await server?.close();
});

/** An event as `type resource` for readable expectations. */
function label(event: Event): string {
  const id = event.resource.case === "tenant" || event.resource.case === "membership" ? event.resource.value.id : undefined;
  const name =
    id === T.id ? "T" : id === U.id ? "U" : (Object.entries(m).find(([, membership]) => membership === id)?.[0] ?? "?");
  return `${event.type} ${name}`;
}

const everything = [
  "tenant.created T",
  "tenant.created U",
  "membership.created tenantAdmin",
  "membership.created member",
  "membership.created z",
  "membership.created otherAdmin",
  "tenant.updated T",
  "tenant.updated U",
];

const expected: Record<Actor, string[]> = {
  platformAdmin: everything,
  tenantAdmin: everything.filter((e) => e.endsWith(" T") || ["membership.created tenantAdmin", "membership.created member", "membership.created z"].includes(e)),
  member: ["tenant.created T", "membership.created member", "tenant.updated T"],
  otherAdmin: ["tenant.created U", "membership.created otherAdmin", "tenant.updated U"],
  stranger: [],
};

describe("ListEvents", () => {
  it.each(actors)("shows %s what it may read", async (actor) => {
    const page = await as[actor].events.listEvents({ pageSize: 1000 });
    expect(page.events.filter((e) => e.sequence > start).map(label)).toEqual(expected[actor]);
  });

  it.each([
    ["platformAdmin", "ok"],
    ["tenantAdmin", "ok"],
    ["member", "ok"],
    ["otherAdmin", "denied"],
    ["stranger", "denied"],
  ] as const)("with tenant_id of T: %s is %s", async (actor, outcome) => {
    const call = as[actor].events.listEvents({ tenantId: T.id, pageSize: 1000 });
    if (outcome === "ok") {
      expect((await call).events.map(label)).toEqual(expected[actor].filter((e) => !e.endsWith(" U") && !e.endsWith("otherAdmin")));
    } else {
      expect((await rpcError(call)).code).toBe(Code.PermissionDenied);
    }
  });

  it("refuses callers without a valid token", async () => {
    const anonymous = createTenancyClients({ baseUrl: server.baseUrl, protocol: "grpc" });
    expect((await rpcError(anonymous.events.listEvents({}))).code).toBe(Code.Unauthenticated);
    const watcher = new Watcher(anonymous, { afterSequence: 0n });
    await watcher.done;
    expect(watcher.error?.code).toBe(Code.Unauthenticated);
  });
});

describe("WatchEvents", () => {
  it.each(actors)("replays to %s exactly what ListEvents shows it", async (actor) => {
    const watcher = new Watcher(as[actor], { afterSequence: start });
    await watcher.until(() => watcher.progress.length > 0);
    expect(watcher.events.map(label)).toEqual(expected[actor]);
    await watcher.close();
  });

  it("refuses a tenant filter on a tenant the caller may not read", async () => {
    const watcher = new Watcher(as.stranger, { tenantId: T.id, startNow: true });
    await watcher.done;
    expect(watcher.error?.code).toBe(Code.PermissionDenied);
  });

  it("follows a member's access live: its own removal is the last event of that tenant it sees", async () => {
    const watchers = Object.fromEntries(actors.map((a) => [a, new Watcher(as[a], { startNow: true })])) as Record<Actor, Watcher>;
    for (const w of Object.values(watchers)) await w.until(() => w.progress.length > 0);
    const pa = as.platformAdmin;
    await pa.tenants.updateTenant({ tenant: { id: T.id, params: { b: 1 } }, updateMask: { paths: ["params.b"] } });
    await pa.memberships.deleteMembership({ id: m.member });
    let last = "";
    await pa.tenants.updateTenant(
      { tenant: { id: T.id, params: { c: 1 } }, updateMask: { paths: ["params.c"] } },
      { onHeader: (h) => (last = h.get("tenancy-event-sequence")!) },
    );
    // A later event every watcher is told about (as an event or as progress).
    for (const w of Object.values(watchers)) await w.until(() => w.position >= BigInt(last));
    const seen = Object.fromEntries(actors.map((a) => [a, watchers[a].events.map(label)]));
    expect(seen).toEqual({
      platformAdmin: ["tenant.updated T", "membership.deleted member", "tenant.updated T"],
      tenantAdmin: ["tenant.updated T", "membership.deleted member", "tenant.updated T"],
      member: ["tenant.updated T", "membership.deleted member"],
      otherAdmin: [],
      stranger: [],
    });
    await Promise.all(Object.values(watchers).map((w) => w.close()));
  });
});
