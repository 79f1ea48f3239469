import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tenant_State as State } from "../../src/client.js";
import { purgeExpiredTenants } from "../../src/tenants/tenant.purger.js";
import { startMaintenance } from "../../src/jobs/maintenance.job.js";
import { createLogger } from "../../src/logger.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

function unique() {
  const tag = Math.random().toString(36).slice(2, 10);
  return { name: `Life ${tag}`, domain: `${tag}.life.example` };
}

describe("suspend and reactivate", () => {
  it("suspends through UpdateTenant(state); a suspended tenant still resolves but takes no new members", async () => {
    const input = unique();
    const tenant = await server.grpc.tenants.createTenant({ tenant: input });
    expect(tenant.state).toBe(State.ACTIVE);
    const member = await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });

    const suspended = await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, state: State.SUSPENDED }, updateMask: { paths: ["state"] } });
    expect(suspended.state).toBe(State.SUSPENDED);
    expect((await server.grpc.tenants.getTenant({ id: tenant.id })).state).toBe(State.SUSPENDED);
    expect((await server.grpc.tenants.lookupTenant({ key: { case: "domain", value: input.domain } })).id).toBe(tenant.id);
    expect((await server.grpc.tenants.lookupTenant({ key: { case: "name", value: input.name } })).id).toBe(tenant.id);
    const refused = await rpcError(
      server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } }),
    );
    expect(describeError(refused)).toEqual({ code: "FailedPrecondition", reason: "TENANT_SUSPENDED" });
    // Existing memberships stay.
    expect((await server.grpc.memberships.getMembership({ id: member.id })).id).toBe(member.id);

    const active = await server.connect.tenants.updateTenant({ tenant: { id: tenant.id, state: State.ACTIVE } });
    expect(active.state).toBe(State.ACTIVE);
    await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
  });

  it("creates a tenant suspended when asked, and refuses DELETED as a requested state", async () => {
    const created = await server.grpc.tenants.createTenant({ tenant: { ...unique(), state: State.SUSPENDED } });
    expect(created.state).toBe(State.SUSPENDED);
    const bad = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), state: State.DELETED } }));
    expect(describeError(bad)).toEqual({ code: "InvalidArgument", fields: ["tenant.state"] });
    const badUpdate = await rpcError(
      server.grpc.tenants.updateTenant({ tenant: { id: created.id, state: State.DELETED }, updateMask: { paths: ["state"] } }),
    );
    expect(describeError(badUpdate)).toEqual({ code: "InvalidArgument", fields: ["tenant.state"] });
  });
});

describe("soft delete, undelete and purge", () => {
  it("keeps a deleted tenant's name and domain reserved, hides it from lists unless show_deleted, and restores it", async () => {
    const input = unique();
    const tenant = await server.grpc.tenants.createTenant({ tenant: input });
    const deleted = await server.grpc.tenants.deleteTenant({ id: tenant.id });
    for (const clash of [{ ...unique(), name: input.name.toUpperCase() }, { ...unique(), domain: input.domain }]) {
      expect((await rpcError(server.grpc.tenants.createTenant({ tenant: clash }))).code).toBe(6 /* ALREADY_EXISTS */);
    }
    const filter = `domain = "${input.domain}"`;
    expect((await server.grpc.tenants.listTenants({ filter })).tenants).toEqual([]);
    expect((await server.grpc.tenants.listTenants({ filter })).totalSize).toBe(0);
    const shown = await server.grpc.tenants.listTenants({ filter, showDeleted: true });
    expect(shown.tenants.map((t) => [t.id, t.state])).toEqual([[tenant.id, State.DELETED]]);
    // A token from a list without deleted tenants is not valid for one with them.
    const updateDeleted = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, name: "New name" } }));
    expect(describeError(updateDeleted)).toEqual({ code: "FailedPrecondition", reason: "TENANT_DELETED" });
    const refused = await rpcError(
      server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } }),
    );
    expect(describeError(refused)).toEqual({ code: "FailedPrecondition", reason: "TENANT_DELETED" });

    const stale = await rpcError(server.grpc.tenants.undeleteTenant({ id: tenant.id, etag: tenant.etag }));
    expect(describeError(stale)).toEqual({ code: "Aborted", reason: "ETAG_MISMATCH" });
    const restored = await server.grpc.tenants.undeleteTenant({ id: tenant.id, etag: deleted.etag });
    expect(restored.state).toBe(State.ACTIVE);
    expect(restored.deleteTime).toBeUndefined();
    expect(restored.purgeTime).toBeUndefined();
    expect((await server.grpc.tenants.lookupTenant({ key: { case: "domain", value: input.domain } })).id).toBe(tenant.id);
    const again = await rpcError(server.grpc.tenants.undeleteTenant({ id: tenant.id }));
    expect(describeError(again)).toEqual({ code: "FailedPrecondition", reason: "TENANT_NOT_DELETED" });
  });

  it("purges a deleted tenant and its memberships for good, and only a deleted one", async () => {
    const input = unique();
    const tenant = await server.grpc.tenants.createTenant({ tenant: input });
    await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    const notDeleted = await rpcError(server.grpc.tenants.purgeTenant({ id: tenant.id }));
    expect(describeError(notDeleted)).toEqual({ code: "FailedPrecondition", reason: "TENANT_NOT_DELETED" });
    await server.grpc.tenants.deleteTenant({ id: tenant.id, force: true });
    await server.grpc.tenants.purgeTenant({ id: tenant.id });
    expect(describeError(await rpcError(server.grpc.tenants.getTenant({ id: tenant.id })))).toEqual({
      code: "NotFound",
      reason: "TENANT_NOT_FOUND",
    });
    expect(describeError(await rpcError(server.grpc.tenants.undeleteTenant({ id: tenant.id })))).toEqual({
      code: "NotFound",
      reason: "TENANT_NOT_FOUND",
    });
    // The name and domain are free again.
    const reborn = await server.grpc.tenants.createTenant({ tenant: input });
    expect(reborn.id).not.toBe(tenant.id);
  });

  it("purges expired tenants by itself, each once, with several purgers running at once", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const t = await server.grpc.tenants.createTenant({ tenant: unique() });
      await server.grpc.tenants.deleteTenant({ id: t.id, force: true });
      ids.push(t.id);
    }
    // Memberships that a database adopted from elsewhere may still hold.
    await server.sql.query(
      `INSERT INTO "UserTenantMapping" ("tenantId", "userId") SELECT id, gen_random_uuid() FROM unnest($1::uuid[]) AS id`,
      [ids],
    );
    const survivor = await server.grpc.tenants.createTenant({ tenant: unique() });
    const notYet = await server.grpc.tenants.deleteTenant({ id: survivor.id });
    // Expire the first 30 as if their retention had passed.
    await server.sql.query(`UPDATE "Tenants" SET purge_at = now() - interval '1 second' WHERE tenant_id = ANY($1::uuid[])`, [ids]);
    const results = await Promise.all([0, 1, 2].map(() => purgeExpiredTenants(server.orm.em.fork(), 7).then(async (first) => {
      const all = [...first];
      for (let batch = first; batch.length > 0; ) {
        batch = await purgeExpiredTenants(server.orm.em.fork(), 7);
        all.push(...batch);
      }
      return all;
    })));
    const purged = results.flat();
    expect(purged.sort()).toEqual([...ids].sort());
    const { rows } = await server.sql.query(
      `SELECT (SELECT count(*)::int FROM "Tenants" WHERE tenant_id = ANY($1::uuid[])) AS tenants,
              (SELECT count(*)::int FROM "UserTenantMapping" WHERE "tenantId" = ANY($1::uuid[])) AS memberships`,
      [ids],
    );
    expect(rows[0]).toEqual({ tenants: 0, memberships: 0 });
    expect((await server.grpc.tenants.getTenant({ id: survivor.id })).state).toBe(notYet.state);
  });

  it("runs the purge on a schedule in the maintenance job", async () => {
    const t = await server.grpc.tenants.createTenant({ tenant: unique() });
    await server.grpc.tenants.deleteTenant({ id: t.id });
    await server.sql.query(`UPDATE "Tenants" SET purge_at = now() WHERE tenant_id = $1`, [t.id]);
    const job = startMaintenance(server.orm, createLogger("silent"), { intervalMs: 100, requestIdRetentionMs: 24 * 3600 * 1000, eventRetentionMs: 7 * 24 * 3600 * 1000 });
    try {
      const deadline = Date.now() + 10_000;
      let gone = false;
      while (!gone && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        gone = (await server.sql.query(`SELECT 1 FROM "Tenants" WHERE tenant_id = $1`, [t.id])).rowCount === 0;
      }
      expect(gone).toBe(true);
    } finally {
      await job.stop();
    }
  });
});
