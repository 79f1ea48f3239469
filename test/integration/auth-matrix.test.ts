import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { clientsWithToken, hsToken, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET } from "../support/tokens.js";

/**
 * The authorization matrix of issue 4, one test per cell: five callers
 * against every RPC.
 *
 * - platformAdmin: the tenancy.admin scope
 * - tenantAdmin:   member of the target tenant with role admin
 * - member:        member of the target tenant without it
 * - otherAdmin:    admin of another tenant
 * - stranger:      member of nothing
 */
const actors = ["platformAdmin", "tenantAdmin", "member", "otherAdmin", "stranger"] as const;
type Actor = (typeof actors)[number];

let server: TestServer;
const ids = {} as Record<Actor, string>;
const as = {} as Record<Actor, TenancyClients>;

/** Tenant T of tenantAdmin and member, and U of otherAdmin. */
let T: { id: string; name: string; domain: string };
let U: { id: string };
/** member's membership of T. */
let memberOfT: { id: string };

const tag = () => Math.random().toString(36).slice(2, 10);

beforeAll(async () => {
  server = await startTestServer({
    auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET }, issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
  });
  for (const actor of actors) {
    ids[actor] = crypto.randomUUID();
    as[actor] = clientsWithToken(server.baseUrl, await hsToken({ sub: ids[actor], admin: actor === "platformAdmin" }));
  }
  T = await as.platformAdmin.tenants.createTenant({ tenant: { name: `Matrix T ${tag()}`, domain: `t-${tag()}.matrix.example` } });
  U = await as.platformAdmin.tenants.createTenant({ tenant: { name: `Matrix U ${tag()}`, domain: `u-${tag()}.matrix.example` } });
  await as.platformAdmin.memberships.createMembership({ membership: { tenantId: T.id, userId: ids.tenantAdmin, roles: ["admin"] } });
  memberOfT = await as.platformAdmin.memberships.createMembership({ membership: { tenantId: T.id, userId: ids.member, roles: ["viewer"] } });
  await as.platformAdmin.memberships.createMembership({ membership: { tenantId: U.id, userId: ids.otherAdmin, roles: ["admin"] } });
});
afterAll(async () => {
  await server?.close();
});

/**
 * A fresh tenant X shaped like T (tenantAdmin its admin, member a plain
 * member, otherAdmin still admin of U) plus one more plain member Z, for
 * cells that change things.
 */
async function freshTenant() {
  const pa = as.platformAdmin;
  const x = await pa.tenants.createTenant({ tenant: { name: `Fresh ${tag()}`, domain: `x-${tag()}.matrix.example`, params: { plan: "basic" } } });
  const adminMembership = await pa.memberships.createMembership({ membership: { tenantId: x.id, userId: ids.tenantAdmin, roles: ["admin"] } });
  const memberMembership = await pa.memberships.createMembership({ membership: { tenantId: x.id, userId: ids.member } });
  const z = await pa.memberships.createMembership({ membership: { tenantId: x.id, userId: crypto.randomUUID() } });
  return { tenant: x, adminMembership, memberMembership, z };
}

type Expected = "ok" | "denied" | "notFound" | "notDenied";

interface Cell {
  rpc: string;
  call: (clients: TenancyClients) => Promise<unknown>;
  expect: Record<Actor, Expected>;
}

const onlyPlatformAdmin = { platformAdmin: "ok", tenantAdmin: "denied", member: "denied", otherAdmin: "denied", stranger: "denied" } as const;
const membersOfT = { platformAdmin: "ok", tenantAdmin: "ok", member: "ok", otherAdmin: "denied", stranger: "denied" } as const;
const adminsOfT = { platformAdmin: "ok", tenantAdmin: "ok", member: "denied", otherAdmin: "denied", stranger: "denied" } as const;
/** For a resource that does not exist: only a platform administrator learns so. */
const missing = { platformAdmin: "notFound", tenantAdmin: "denied", member: "denied", otherAdmin: "denied", stranger: "denied" } as const;

const cells: Cell[] = [
  // TenantService
  {
    rpc: "CreateTenant",
    call: (c) => c.tenants.createTenant({ tenant: { name: `New ${tag()}`, domain: `n-${tag()}.matrix.example` } }),
    expect: onlyPlatformAdmin,
  },
  { rpc: "GetTenant T", call: (c) => c.tenants.getTenant({ id: T.id }), expect: membersOfT },
  { rpc: "GetTenant (no such tenant)", call: (c) => c.tenants.getTenant({ id: crypto.randomUUID() }), expect: missing },
  { rpc: "LookupTenant T by domain", call: (c) => c.tenants.lookupTenant({ key: { case: "domain", value: T.domain.toUpperCase() } }), expect: membersOfT },
  { rpc: "LookupTenant T by name", call: (c) => c.tenants.lookupTenant({ key: { case: "name", value: ` ${T.name.toLowerCase()} ` } }), expect: membersOfT },
  {
    rpc: "LookupTenant (no such domain)",
    call: (c) => c.tenants.lookupTenant({ key: { case: "domain", value: `${tag()}.nowhere.example` } }),
    expect: missing,
  },
  { rpc: "LookupTenant (no such name)", call: (c) => c.tenants.lookupTenant({ key: { case: "name", value: `Nobody ${tag()}` } }), expect: missing },
  {
    rpc: "UpdateTenant params (mask params.plan)",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "pro" } }, updateMask: { paths: ["params.plan"] } });
    },
    expect: adminsOfT,
  },
  {
    rpc: "UpdateTenant params (mask params)",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "pro" } }, updateMask: { paths: ["params"] } });
    },
    expect: adminsOfT,
  },
  {
    rpc: "UpdateTenant params (empty mask, only params set)",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "pro" }, etag: tenant.etag } });
    },
    expect: adminsOfT,
  },
  {
    rpc: "UpdateTenant name",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.updateTenant({ tenant: { id: tenant.id, name: `Renamed ${tag()}` }, updateMask: { paths: ["name"] } });
    },
    expect: onlyPlatformAdmin,
  },
  {
    rpc: "UpdateTenant domain",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.updateTenant({ tenant: { id: tenant.id, domain: `moved-${tag()}.matrix.example` }, updateMask: { paths: ["domain"] } });
    },
    expect: onlyPlatformAdmin,
  },
  {
    rpc: "UpdateTenant params and name together",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.updateTenant({
        tenant: { id: tenant.id, name: `Renamed ${tag()}`, params: { plan: "pro" } },
        updateMask: { paths: ["params.plan", "name"] },
      });
    },
    expect: onlyPlatformAdmin,
  },
  {
    rpc: "UpdateTenant (empty mask, name set)",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.updateTenant({ tenant: { id: tenant.id, name: `Renamed ${tag()}`, params: { plan: "pro" } } });
    },
    expect: onlyPlatformAdmin,
  },
  {
    rpc: "DeleteTenant",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.deleteTenant({ id: tenant.id, force: true });
    },
    expect: onlyPlatformAdmin,
  },
  {
    rpc: "UndeleteTenant",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.undeleteTenant({ id: tenant.id });
    },
    expect: { ...onlyPlatformAdmin, platformAdmin: "notDenied" },
  },
  {
    rpc: "PurgeTenant",
    call: async (c) => {
      const { tenant } = await freshTenant();
      return c.tenants.purgeTenant({ id: tenant.id });
    },
    expect: { ...onlyPlatformAdmin, platformAdmin: "notDenied" },
  },

  // MembershipService
  {
    rpc: "CreateMembership in T",
    call: (c) => c.memberships.createMembership({ membership: { tenantId: T.id, userId: crypto.randomUUID(), roles: ["admin"] } }),
    expect: adminsOfT,
  },
  {
    rpc: "CreateMembership (no such tenant)",
    call: (c) => c.memberships.createMembership({ membership: { tenantId: crypto.randomUUID(), userId: crypto.randomUUID() } }),
    expect: missing,
  },
  { rpc: "GetMembership, the member's own", call: (c) => c.memberships.getMembership({ id: memberOfT.id }), expect: membersOfT },
  {
    rpc: "GetMembership, another member's",
    call: async (c) => {
      const { z } = await freshTenant();
      return c.memberships.getMembership({ id: z.id });
    },
    expect: adminsOfT,
  },
  { rpc: "GetMembership (no such membership)", call: (c) => c.memberships.getMembership({ id: crypto.randomUUID() }), expect: missing },
  { rpc: "ListMemberships of T", call: (c) => c.memberships.listMemberships({ tenantId: T.id }), expect: adminsOfT },
  {
    rpc: "ListMemberships of T and a user",
    call: (c) => c.memberships.listMemberships({ tenantId: T.id, userId: ids.member }),
    expect: membersOfT,
  },
  {
    rpc: "ListMemberships of the member, in every tenant",
    call: (c) => c.memberships.listMemberships({ userId: ids.member }),
    expect: { platformAdmin: "ok", tenantAdmin: "denied", member: "ok", otherAdmin: "denied", stranger: "denied" },
  },
  { rpc: "ListMemberships of everyone", call: (c) => c.memberships.listMemberships({}), expect: onlyPlatformAdmin },
  {
    rpc: "UpdateMembership of another member",
    call: async (c) => {
      const { z } = await freshTenant();
      return c.memberships.updateMembership({ membership: { id: z.id, roles: ["editor"] } });
    },
    expect: adminsOfT,
  },
  {
    rpc: "UpdateMembership of one's own (self-promotion)",
    call: async (c) => {
      const { memberMembership } = await freshTenant();
      return c.memberships.updateMembership({ membership: { id: memberMembership.id, roles: ["admin"] } });
    },
    expect: adminsOfT,
  },
  {
    rpc: "UpdateMembership (no such membership)",
    call: (c) => c.memberships.updateMembership({ membership: { id: crypto.randomUUID(), roles: [] } }),
    expect: missing,
  },
  {
    rpc: "DeleteMembership of another member",
    call: async (c) => {
      const { z } = await freshTenant();
      return c.memberships.deleteMembership({ id: z.id });
    },
    expect: adminsOfT,
  },
  {
    rpc: "DeleteMembership of one's own",
    call: async (c) => {
      const { memberMembership } = await freshTenant();
      return c.memberships.deleteMembership({ id: memberMembership.id });
    },
    expect: adminsOfT,
  },
  {
    rpc: "DeleteMembership (no such membership)",
    call: (c) => c.memberships.deleteMembership({ id: crypto.randomUUID() }),
    expect: missing,
  },
];

describe.each(cells)("$rpc", (cell) => {
  it.each(actors)("as %s", async (actor) => {
    const expected = cell.expect[actor];
    let error: ConnectError | undefined;
    try {
      await cell.call(as[actor]);
    } catch (e) {
      error = ConnectError.from(e);
    }
    if (expected === "ok") expect(error && describeError(error)).toBeUndefined();
    else if (expected === "notDenied") expect(error?.code).not.toBe(Code.PermissionDenied);
    else if (expected === "notFound") expect(error?.code).toBe(Code.NotFound);
    else {
      expect(error && describeError(error)).toEqual({ code: "PermissionDenied" });
    }
  });
});

describe("no existence oracle", () => {
  it("answers a stranger the same for a tenant that exists and one that does not", async () => {
    const pairs: Array<[() => Promise<unknown>, () => Promise<unknown>]> = [
      [() => as.stranger.tenants.getTenant({ id: T.id }), () => as.stranger.tenants.getTenant({ id: crypto.randomUUID() })],
      [
        () => as.stranger.tenants.lookupTenant({ key: { case: "domain", value: T.domain } }),
        () => as.stranger.tenants.lookupTenant({ key: { case: "domain", value: `${tag()}.nowhere.example` } }),
      ],
      [
        () => as.stranger.tenants.lookupTenant({ key: { case: "name", value: T.name } }),
        () => as.stranger.tenants.lookupTenant({ key: { case: "name", value: `Nobody ${tag()}` } }),
      ],
      [() => as.otherAdmin.memberships.getMembership({ id: memberOfT.id }), () => as.otherAdmin.memberships.getMembership({ id: crypto.randomUUID() })],
      [
        () => as.otherAdmin.memberships.deleteMembership({ id: memberOfT.id }),
        () => as.otherAdmin.memberships.deleteMembership({ id: crypto.randomUUID() }),
      ],
      [
        () => as.otherAdmin.memberships.listMemberships({ tenantId: T.id }),
        () => as.otherAdmin.memberships.listMemberships({ tenantId: crypto.randomUUID() }),
      ],
    ];
    for (const [existing, absent] of pairs) {
      const [a, b] = [await rpcError(existing()), await rpcError(absent())];
      expect(a.code).toBe(Code.PermissionDenied);
      expect([b.code, b.rawMessage, b.details]).toEqual([a.code, a.rawMessage, a.details]);
    }
  });

  it("still validates arguments first: a malformed id is INVALID_ARGUMENT for anyone", async () => {
    expect(describeError(await rpcError(as.stranger.tenants.getTenant({ id: "x" })))).toEqual({ code: "InvalidArgument", fields: ["id"] });
    expect(describeError(await rpcError(as.stranger.memberships.getMembership({ id: "" })))).toEqual({ code: "InvalidArgument", fields: ["id"] });
    expect(describeError(await rpcError(as.member.memberships.listMemberships({ tenantId: "x", userId: "y" })))).toEqual({
      code: "InvalidArgument",
      fields: ["tenant_id", "user_id"],
    });
  });
});

describe("ListTenants shows a caller only the tenants they belong to", () => {
  it("filters, counts and pages within the caller's tenants only", async () => {
    const pa = as.platformAdmin;
    const user = crypto.randomUUID();
    const mine = [];
    for (let i = 0; i < 3; i++) {
      const tenant = await pa.tenants.createTenant({
        tenant: { name: `Mine ${i} ${tag()}`, domain: `mine-${i}-${tag()}.list.example`, params: { plan: i === 0 ? "pro" : "basic" } },
      });
      await pa.memberships.createMembership({ membership: { tenantId: tenant.id, userId: user, roles: i === 0 ? ["admin"] : [] } });
      mine.push(tenant);
    }
    // Someone else's pro tenant, which the filter would match.
    await pa.tenants.createTenant({ tenant: { name: `Theirs ${tag()}`, domain: `theirs-${tag()}.list.example`, params: { plan: "pro" } } });
    const clients = clientsWithToken(server.baseUrl, await hsToken({ sub: user }));

    const all = await clients.tenants.listTenants({});
    expect(all.tenants.map((t) => t.id).sort()).toEqual(mine.map((t) => t.id).sort());
    expect(all.totalSize).toBe(3);

    const pro = await clients.tenants.listTenants({ filter: `params.plan = "pro"` });
    expect(pro.tenants.map((t) => t.id)).toEqual([mine[0]!.id]);
    expect(pro.totalSize).toBe(1);

    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await clients.tenants.listTenants({ pageSize: 2, pageToken, orderBy: "name" });
      expect(page.totalSize).toBe(3);
      seen.push(...page.tenants.map((t) => t.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen.sort()).toEqual(mine.map((t) => t.id).sort());
  });

  it("shows each matrix actor exactly their tenants, and everything to a platform administrator", async () => {
    const names = async (actor: Actor) => (await as[actor].tenants.listTenants({ pageSize: 1000 })).tenants.map((t) => t.id);
    expect(await names("member")).toContain(T.id);
    expect(await names("member")).not.toContain(U.id);
    expect(await names("otherAdmin")).toEqual([U.id]);
    expect(await names("stranger")).toEqual([]);
    const everything = await as.platformAdmin.tenants.listTenants({ pageSize: 1000 });
    expect(everything.tenants.map((t) => t.id)).toEqual(expect.arrayContaining([T.id, U.id]));
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE state <> 'DELETED'`);
    expect(everything.totalSize).toBe(rows[0].n);
  });

  it("lists a user's own memberships (\"my tenants\") across tenants", async () => {
    const mine = await as.tenantAdmin.memberships.listMemberships({ userId: ids.tenantAdmin });
    expect(mine.memberships.every((m) => m.userId === ids.tenantAdmin)).toBe(true);
    expect(mine.memberships.map((m) => m.tenantId)).toContain(T.id);
    expect((await as.stranger.memberships.listMemberships({ userId: ids.stranger })).memberships).toEqual([]);
  });
});

describe("what a tenant administrator may and may not change", () => {
  it("explains why an update of the name is refused, and leaves the tenant unchanged", async () => {
    const { tenant } = await freshTenant();
    const error = await rpcError(
      as.tenantAdmin.tenants.updateTenant({ tenant: { id: tenant.id, name: "Hijacked" }, updateMask: { paths: ["name"] } }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/only the tenant's params/);
    expect((await as.platformAdmin.tenants.getTenant({ id: tenant.id })).name).toBe(tenant.name);
  });

  it("refuses a tenant administrator's update of state, whatever the lifecycle allows", async () => {
    const { tenant } = await freshTenant();
    const error = await rpcError(as.tenantAdmin.tenants.updateTenant({ tenant: { id: tenant.id }, updateMask: { paths: ["state"] } }));
    expect(error.code).toBe(Code.PermissionDenied);
  });

  it("stamps memberships a tenant administrator creates with their id, not the message's", async () => {
    const forged = crypto.randomUUID();
    const created = await as.tenantAdmin.memberships.createMembership(
      { membership: { tenantId: T.id, userId: crypto.randomUUID(), createdBy: forged, updatedBy: forged } },
      { headers: { "x-actor-id": forged } },
    );
    expect(created).toMatchObject({ createdBy: ids.tenantAdmin, updatedBy: ids.tenantAdmin });
  });
});
