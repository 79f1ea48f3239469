import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError } from "../support/errors.js";
import { holdCoalescedCreates, refuseCoalescedRows } from "../support/coalescing.js";
import { waitUntil } from "../support/wait.js";
import { Tenant_State, type Membership } from "../../src/client.js";
import { MembershipRepository } from "../../src/memberships/membership.repository.js";

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

const outcomeOf = (call: Promise<Membership>): Promise<Outcome> =>
  call.then(
    (membership) => ({ ok: true as const, membership }),
    (e: unknown) => ({ ok: false as const, error: describeError(e as never) }),
  );

/** Holds the coalesced CreateMembership statements behind a lock (see holdBatches). */
async function holdCreates(tenantId: string, deadline?: number) {
  return holdCoalescedCreates(server, "memberships", () =>
    server.grpc.memberships.createMembership({ membership: { tenantId, userId: crypto.randomUUID() } }, { timeoutMs: deadline }),
  );
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${server.baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

describe("coalesced membership creates", () => {
  it("answers each of many concurrent creates on its own, from one statement", async () => {
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

    const blockersTenant = await tenant();
    const held = await holdCreates(blockersTenant.id);
    const outcomes: Outcome[] = await held.together(
      requests.map(({ tenantId, userId, roles }) => outcomeOf(server.grpc.memberships.createMembership({ membership: { tenantId, userId, roles } }))),
    );
    await held.blockers();
    expect(server.membershipInserter.stats.batches - held.batchesBefore).toBe(1);

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
    // Suspended once the first creates have reached the database.
    const before = server.membershipInserter.stats.batches;
    await waitUntil(() => server.membershipInserter.stats.batches > before, "a batch sent");
    await server.grpc.tenants.updateTenant({ tenant: { id: target.id, state: Tenant_State.SUSPENDED }, updateMask: { paths: ["state"] } });
    const outcomes = await Promise.all(creates);
    for (const outcome of outcomes) expect(["created", "TENANT_SUSPENDED"]).toContain(outcome);
    const { rows } = await server.sql.query(`SELECT "userId" FROM "UserTenantMapping" WHERE "tenantId" = $1`, [target.id]);
    expect(new Set(rows.map((r: { userId: string }) => r.userId))).toEqual(new Set(users.filter((_, i) => outcomes[i] === "created")));
    // Once the suspension has returned, nobody joins.
    const late = await server.grpc.memberships.createMembership({ membership: { tenantId: target.id, userId: crypto.randomUUID() } }).catch((e: unknown) => e);
    expect(describeError(late as never).reason).toBe("TENANT_SUSPENDED");
  });

  it("coalesces creates that carry a deadline, and counts them in the coalescing metrics", async () => {
    const target = await tenant();
    const held = await holdCreates(target.id, 30_000);
    const users = Array.from({ length: 24 }, () => crypto.randomUUID());
    let outcomes: Outcome[];
    let statements: number;
    let served: number;
    try {
      statements = await metric("tenancy_coalesced_statements_total", `kind="create_membership"`);
      served = await metric("tenancy_coalesced_requests_total", `kind="create_membership"`);
      const running = Promise.all(
        users.map((userId) => outcomeOf(server.grpc.memberships.createMembership({ membership: { tenantId: target.id, userId } }, { timeoutMs: 30_000 }))),
      );
      await held.queued(1 + users.length);
      await held.release();
      outcomes = await running;
    } finally {
      await held.release();
    }
    await held.blockers();
    expect(outcomes.filter((o) => o.ok)).toHaveLength(users.length);
    expect(server.membershipInserter.stats.batches - held.batchesBefore).toBe(1);
    expect(await metric("tenancy_coalesced_statements_total", `kind="create_membership"`)).toBe(statements + 1);
    expect(await metric("tenancy_coalesced_requests_total", `kind="create_membership"`)).toBe(served + 1 + users.length);
  });

  it("inserts the memberships of a refused batch alone with the ids they were given", async () => {
    // The batch statement fails on one row's data (class 23); every
    // membership is then inserted alone (where the trigger lets it pass),
    // keeping the id the batch statement carried, as tenants do.
    const target = await tenant();
    const refusedUser = crypto.randomUUID();
    const removeRefusal = await refuseCoalescedRows(server, { table: "UserTenantMapping", when: `NEW."userId" = '${refusedUser}'`, batch: "23514" });
    // Calls through, recording what each batch statement carried.
    const insertMany = vi.spyOn(MembershipRepository.prototype, "insertMany");
    try {
      const users: string[] = [refusedUser, ...Array.from({ length: 9 }, () => crypto.randomUUID())];
      const held = await holdCreates(target.id);
      const outcomes: Outcome[] = await held.together(users.map((userId) => outcomeOf(server.grpc.memberships.createMembership({ membership: { tenantId: target.id, userId } }))));
      await held.blockers();
      expect(outcomes.every((o) => o.ok)).toBe(true);
      const ids = outcomes.map((o) => (o.ok ? o.membership.id : ""));
      const carried = insertMany.mock.calls.flatMap(([memberships]) => memberships).filter((m) => users.includes(m.userId));
      expect(carried.map((m) => m.id).sort()).toEqual([...ids].sort());
      const { rows } = await server.sql.query(`SELECT "Id" AS id FROM "UserTenantMapping" WHERE "tenantId" = $1 AND "userId" = ANY($2::uuid[])`, [
        target.id,
        users,
      ]);
      expect(rows.map((r: { id: string }) => r.id).sort()).toEqual([...ids].sort());
    } finally {
      insertMany.mockRestore();
      await removeRefusal();
    }
  });
});
