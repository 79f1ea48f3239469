import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError } from "../support/errors.js";
import { Tenant_State, type Membership } from "../../src/client.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function tenant(state?: Tenant_State) {
  const tag = Math.random().toString(36).slice(2, 10);
  return server.grpc.tenants.createTenant({ tenant: { name: `Members ${tag}`, domain: `members-${tag}.example.org`, state } });
}

type Outcome = { ok: true; membership: Membership } | { ok: false; error: { code: string; reason?: string } };

describe("coalesced membership creates", () => {
  it("answers each of many concurrent creates on its own, with fewer statements than requests", async () => {
    const active = await tenant();
    const suspended = await tenant(Tenant_State.SUSPENDED);
    const deleted = await tenant();
    await server.grpc.tenants.deleteTenant({ id: deleted.id });
    const alreadyMember = crypto.randomUUID();
    await server.grpc.memberships.createMembership({ membership: { tenantId: active.id, userId: alreadyMember } });
    const twice = crypto.randomUUID();

    const requests: Array<{ tenantId: string; userId: string; roles: string[]; expected: string }> = [];
    for (let i = 0; i < 40; i++) {
      requests.push({ tenantId: active.id, userId: crypto.randomUUID(), roles: i % 4 === 0 ? ["admin", "member"] : [], expected: "created" });
    }
    requests.push({ tenantId: active.id, userId: alreadyMember, roles: [], expected: "MEMBERSHIP_EXISTS" });
    requests.push({ tenantId: suspended.id, userId: crypto.randomUUID(), roles: [], expected: "TENANT_SUSPENDED" });
    requests.push({ tenantId: deleted.id, userId: crypto.randomUUID(), roles: [], expected: "TENANT_DELETED" });
    requests.push({ tenantId: crypto.randomUUID(), userId: crypto.randomUUID(), roles: [], expected: "TENANT_NOT_FOUND" });
    requests.push({ tenantId: active.id.toUpperCase(), userId: twice, roles: [], expected: "one of two" });
    requests.push({ tenantId: active.id, userId: twice.toUpperCase(), roles: [], expected: "one of two" });

    const before = server.membershipInserter.stats.batches;
    const outcomes: Outcome[] = await Promise.all(
      requests.map(({ tenantId, userId, roles }) =>
        server.grpc.memberships.createMembership({ membership: { tenantId, userId, roles } }).then(
          (membership) => ({ ok: true as const, membership }),
          (e: unknown) => ({ ok: false as const, error: describeError(e as never) }),
        ),
      ),
    );
    const batches = server.membershipInserter.stats.batches - before;
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(requests.length / 2);

    const told = (o: Outcome) => (o.ok ? "created" : o.error.reason);
    expect(outcomes.slice(0, -2).map(told)).toEqual(requests.slice(0, -2).map((r) => r.expected));
    expect(outcomes.slice(-2).map(told).sort()).toEqual(["MEMBERSHIP_EXISTS", "created"]);

    // What each caller was told is what is stored.
    for (const [i, o] of outcomes.entries()) {
      if (!o.ok) continue;
      expect(o.membership).toMatchObject({ tenantId: active.id, userId: requests[i]!.userId.toLowerCase(), roles: requests[i]!.roles });
      expect(await server.grpc.memberships.getMembership({ id: o.membership.id })).toEqual(o.membership);
    }
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "UserTenantMapping" WHERE "tenantId" = $1`, [active.id]);
    expect(rows[0].n).toBe(1 + 40 + 1);
    const others = await server.sql.query(`SELECT count(*)::int AS n FROM "UserTenantMapping" WHERE "tenantId" = ANY($1::uuid[])`, [
      [suspended.id, deleted.id],
    ]);
    expect(others.rows[0].n).toBe(0);
  });

  it("answers each create that races a suspension truthfully: created and stored, or TENANT_SUSPENDED and not", async () => {
    const target = await tenant();
    const users = Array.from({ length: 60 }, () => crypto.randomUUID());
    const creates = users.map((userId) =>
      server.grpc.memberships.createMembership({ membership: { tenantId: target.id, userId } }).then(
        () => "created",
        (e: unknown) => describeError(e as never).reason,
      ),
    );
    await new Promise((r) => setTimeout(r, 5));
    await server.grpc.tenants.updateTenant({ tenant: { id: target.id, state: Tenant_State.SUSPENDED }, updateMask: { paths: ["state"] } });
    const outcomes = await Promise.all(creates);
    for (const outcome of outcomes) expect(["created", "TENANT_SUSPENDED"]).toContain(outcome);
    const { rows } = await server.sql.query(`SELECT "userId" FROM "UserTenantMapping" WHERE "tenantId" = $1`, [target.id]);
    expect(new Set(rows.map((r: { userId: string }) => r.userId))).toEqual(new Set(users.filter((_, i) => outcomes[i] === "created")));
    // Once the suspension has returned, nobody joins.
    const late = await server.grpc.memberships.createMembership({ membership: { tenantId: target.id, userId: crypto.randomUUID() } }).catch((e: unknown) => e);
    expect(describeError(late as never).reason).toBe("TENANT_SUSPENDED");
  });
});
