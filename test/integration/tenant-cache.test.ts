import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Tenant } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * Two instances of the service on one database, each with its own tenant
 * cache and invalidation listener, as in production behind a load balancer.
 */
let a: TestServer;
let b: TestServer;
beforeAll(async () => {
  // Short heartbeats and a slow first reconnect, so the dropped-connection
  // case has a window in which B is known to be without invalidations.
  const listener = { heartbeatMs: 500, heartbeatTimeoutMs: 1_000, reconnectMinMs: 3_000, reconnectMaxMs: 3_000 };
  a = await startTestServer({ tenantCacheListener: listener });
  b = await startTestServer({ databaseUrl: a.databaseUrl, tenantCacheListener: listener });
  await Promise.all([a.tenantCache.listener!.listening(), b.tenantCache.listener!.listening()]);
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});

let counter = 0;
function unique() {
  counter += 1;
  const tag = `c${counter}-${Math.random().toString(36).slice(2, 8)}`;
  return { name: `Cached ${tag}`, domain: `${tag}.cache.example` };
}

/** Polls until `check` returns true, for at most `timeoutMs`: a bounded wait, not a timing assertion. */
async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const byDomain = (server: TestServer, domain: string) => server.grpc.tenants.lookupTenant({ key: { case: "domain", value: domain } });

async function notFound(call: Promise<unknown>): Promise<boolean> {
  try {
    await call;
    return false;
  } catch (error) {
    return ConnectError.from(error).code === Code.NotFound;
  }
}

describe("tenant cache", () => {
  it("answers repeated GetTenant and LookupTenant from the cache, counted in the metrics", async () => {
    const t = await a.grpc.tenants.createTenant({ tenant: { ...unique(), params: { plan: "pro" } } });
    const before = { ...b.tenantCache.cache.stats };
    expect(await b.grpc.tenants.getTenant({ id: t.id })).toEqual(t);
    expect(await b.grpc.tenants.getTenant({ id: t.id.toUpperCase() })).toEqual(t);
    expect(await byDomain(b, t.domain)).toEqual(t);
    expect(await byDomain(b, `${t.domain.toUpperCase()}.`)).toEqual(t); // normalized to the same key
    expect(b.tenantCache.cache.stats.misses - before.misses).toBe(2);
    expect(b.tenantCache.cache.stats.hits - before.hits).toBe(2);

    const metrics = await (await fetch(`${b.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/tenancy_tenant_cache_requests_total\{result="hit"\} [1-9]/);
    expect(metrics).toMatch(/tenancy_tenant_cache_requests_total\{result="miss"\} [1-9]/);
    expect(metrics).toMatch(/tenancy_tenant_cache_live 1/);
  });

  it("never answers with the old version on the instance that wrote, once the write returned", async () => {
    const t = await a.grpc.tenants.createTenant({ tenant: unique() });
    // Readers keep the cache busy with fills racing the writes.
    let stop = false;
    const readers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        await a.grpc.tenants.getTenant({ id: t.id });
        await byDomain(a, t.domain);
      }
    });
    try {
      for (let i = 0; i < 25; i++) {
        const updated = await a.grpc.tenants.updateTenant({
          tenant: { id: t.id, params: { round: i } },
          updateMask: { paths: ["params"] },
        });
        expect(await a.grpc.tenants.getTenant({ id: t.id })).toEqual(updated);
        expect(await byDomain(a, t.domain)).toEqual(updated);
      }
    } finally {
      stop = true;
      await Promise.all(readers);
    }
    expect(a.tenantCache.cache.stats.hits).toBeGreaterThan(0);
  });

  it("drops a changed tenant on every other instance when the change commits", async () => {
    const t = await a.grpc.tenants.createTenant({ tenant: unique() });
    await b.grpc.tenants.getTenant({ id: t.id });
    await byDomain(b, t.domain);
    const hits = b.tenantCache.cache.stats.hits;
    expect((await b.grpc.tenants.getTenant({ id: t.id })).etag).toBe(t.etag);
    expect(b.tenantCache.cache.stats.hits).toBe(hits + 1); // B holds it

    // An update through A.
    const updated = await a.grpc.tenants.updateTenant({ tenant: { id: t.id, params: { plan: "enterprise" } }, updateMask: { paths: ["params"] } });
    await eventually(async () => (await b.grpc.tenants.getTenant({ id: t.id })).etag === updated.etag, "B to see the update");
    expect(await b.grpc.tenants.getTenant({ id: t.id })).toEqual(updated);

    // A new domain: the old one no longer resolves on B, the new one does.
    const oldDomain = t.domain;
    const moved = await a.grpc.tenants.updateTenant({ tenant: { id: t.id, domain: `moved-${oldDomain}` }, updateMask: { paths: ["domain"] } });
    await eventually(() => notFound(byDomain(b, oldDomain)), "the old domain to stop resolving on B");
    expect(await byDomain(b, moved.domain)).toEqual(moved);

    // A soft delete hides it from LookupTenant on B too.
    await byDomain(b, moved.domain);
    await a.grpc.tenants.deleteTenant({ id: t.id });
    await eventually(() => notFound(byDomain(b, moved.domain)), "the deleted tenant to stop resolving on B");

    // A change made outside the service (the trigger announces it as well).
    const other = await a.grpc.tenants.createTenant({ tenant: unique() });
    await byDomain(b, other.domain);
    await a.sql.query(`UPDATE "Tenants" SET params = '{"by":"psql"}', version = version + 1 WHERE tenant_id = $1`, [other.id]);
    await eventually(async () => (await byDomain(b, other.domain)).params?.by === "psql", "B to see a change made with SQL");
  });

  it("clears and bypasses the cache while the notification connection is down, and uses it again once it is back", async () => {
    const t = await a.grpc.tenants.createTenant({ tenant: unique() });
    await b.grpc.tenants.getTenant({ id: t.id });
    const hits = b.tenantCache.cache.stats.hits;
    await b.grpc.tenants.getTenant({ id: t.id });
    expect(b.tenantCache.cache.stats.hits).toBe(hits + 1);

    const listener = b.tenantCache.listener!;
    const pid = listener.backendPid;
    expect(pid).toBeTypeOf("number");
    const { rows } = await a.sql.query(`SELECT pg_terminate_backend($1) AS ok`, [pid]);
    expect(rows[0].ok).toBe(true);
    await eventually(() => listener.state !== "listening", "B to notice the lost connection");
    expect(b.tenantCache.cache.usable).toBe(false);
    expect(b.tenantCache.cache.size).toBe(0);

    // Nothing tells B about this write: it must not answer from the cache.
    const bypassed = b.tenantCache.cache.stats.bypassed;
    const updated = await a.grpc.tenants.updateTenant({ tenant: { id: t.id, params: { during: "outage" } }, updateMask: { paths: ["params"] } });
    const down = () => listener.state !== "listening";
    const downBefore = down();
    expect(await b.grpc.tenants.getTenant({ id: t.id })).toEqual(updated);
    expect(await b.grpc.tenants.getTenant({ id: t.id })).toEqual(updated);
    if (downBefore && down()) {
      expect(b.tenantCache.cache.stats.bypassed - bypassed).toBe(2);
    }

    // Back: LISTEN again, cache in use again, invalidations flowing again.
    await listener.listening();
    expect(listener.backendPid).not.toBe(pid);
    await b.grpc.tenants.getTenant({ id: t.id });
    const hitsAfter = b.tenantCache.cache.stats.hits;
    expect(await b.grpc.tenants.getTenant({ id: t.id })).toEqual(updated);
    expect(b.tenantCache.cache.stats.hits).toBe(hitsAfter + 1);
    const again = await a.grpc.tenants.updateTenant({ tenant: { id: t.id, params: { after: "outage" } }, updateMask: { paths: ["params"] } });
    await eventually(async () => (await b.grpc.tenants.getTenant({ id: t.id })).etag === again.etag, "B to see updates again");
    expect(b.logs.some((line) => String(line.msg).includes("invalidation connection lost"))).toBe(true);
  });

  it("can be disabled", async () => {
    const off = await startTestServer({ databaseUrl: a.databaseUrl, tenantCacheSize: 0 });
    try {
      const t: Tenant = await off.grpc.tenants.createTenant({ tenant: unique() });
      await off.grpc.tenants.getTenant({ id: t.id });
      await off.grpc.tenants.getTenant({ id: t.id });
      expect(off.tenantCache.cache.stats).toMatchObject({ hits: 0, misses: 0, bypassed: 0 });
      expect(off.tenantCache.listener).toBeUndefined();
    } finally {
      await off.close();
    }
  });
});
