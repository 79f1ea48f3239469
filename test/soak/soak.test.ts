import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/database/embedded-postgres.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * A bounded soak: many concurrent clients drive a mix of every RPC for
 * SOAK_SECONDS while the database is restarted once; afterwards every
 * acknowledged write must be there exactly once and every acknowledged
 * delete gone. Off unless SOAK_SECONDS is set (`.ci/run` sets it).
 */
const seconds = Number(process.env.SOAK_SECONDS ?? 0);

describe.skipIf(!seconds)(`soak for ${seconds}s with a database restart`, () => {
  let dataDir: string;
  let db: EmbeddedDatabase;
  let server: TestServer;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-soak-"));
    db = await startEmbeddedPostgres({ dataDir, database: "postgres" });
    server = await startTestServer({ databaseServerUrl: db.url, healthIntervalMs: 200, acquireTimeoutMs: 2_000 });
  });
  afterAll(async () => {
    await server?.close();
    await db?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("loses and duplicates nothing", async () => {
    const run = Math.random().toString(36).slice(2, 7);
    const tenants = new Map<string, string>(); // id -> domain, acknowledged creates
    const memberships = new Map<string, string>(); // id -> tenant id, acknowledged creates
    const deletedMemberships = new Set<string>(); // acknowledged deletes
    const counts = { ok: 0, unavailable: 0, expected: 0, other: 0 };
    const other: string[] = [];
    const deadline = Date.now() + seconds * 1000;
    let sequence = 0;

    const attempt = async (fn: () => Promise<void>) => {
      try {
        await fn();
        counts.ok += 1;
      } catch (error) {
        const e = ConnectError.from(error);
        if (e.code === Code.Unavailable || e.code === Code.DeadlineExceeded) counts.unavailable += 1;
        else if ([Code.NotFound, Code.AlreadyExists, Code.FailedPrecondition, Code.Aborted].includes(e.code)) counts.expected += 1;
        else {
          counts.other += 1;
          other.push(`${Code[e.code]}: ${e.rawMessage}`);
        }
        if (e.code === Code.Unavailable) await new Promise((r) => setTimeout(r, 50));
      }
    };
    const pick = <T,>(values: T[]): T | undefined => values[Math.floor(Math.random() * values.length)];

    const worker = async (w: number) => {
      const client = w % 2 ? server.grpc : server.connect;
      while (Date.now() < deadline) {
        const roll = Math.random();
        const n = ++sequence;
        if (roll < 0.1) {
          // Half the creates carry no request_id and go through the coalesced
          // inserter: one attempt each (after UNAVAILABLE it is unknown
          // whether the tenant was stored, and only a request_id makes a
          // retry safe); what is acknowledged must be stored.
          const domain = `s${n}-${run}.soak.example`;
          await attempt(async () => {
            const t = await client.tenants.createTenant({ tenant: { name: `Soak ${run} ${n}`, domain, params: { n } } }, { timeoutMs: 5_000 });
            tenants.set(t.id, domain);
          });
        } else if (roll < 0.2) {
          // The others are retried with their request_id until answered, as a careful client does.
          const requestId = crypto.randomUUID();
          const domain = `s${n}-${run}.soak.example`;
          for (let tries = 0; tries < 50 && Date.now() < deadline + 5_000; tries++) {
            try {
              const t = await client.tenants.createTenant({ tenant: { name: `Soak ${run} ${n}`, domain, params: { n } }, requestId });
              tenants.set(t.id, domain);
              counts.ok += 1;
              break;
            } catch (error) {
              const e = ConnectError.from(error);
              if (e.code !== Code.Unavailable && e.code !== Code.DeadlineExceeded) {
                counts.other += 1;
                other.push(`create: ${Code[e.code]}: ${e.rawMessage}`);
                break;
              }
              counts.unavailable += 1;
              await new Promise((r) => setTimeout(r, 100));
            }
          }
        } else if (roll < 0.35) {
          const tenantId = pick([...tenants.keys()]);
          if (tenantId)
            await attempt(async () => {
              const m = await client.memberships.createMembership({ membership: { tenantId, userId: crypto.randomUUID() } });
              memberships.set(m.id, tenantId);
            });
        } else if (roll < 0.42) {
          const id = pick([...memberships.keys()].filter((m) => !deletedMemberships.has(m)));
          if (id)
            await attempt(async () => {
              await client.memberships.deleteMembership({ id });
              deletedMemberships.add(id);
            });
        } else if (roll < 0.55) {
          const id = pick([...tenants.keys()]);
          if (id) await attempt(async () => void (await client.tenants.updateTenant({ tenant: { id, params: { [`k${w}`]: n } }, updateMask: { paths: [`params.k${w}`] } })));
        } else if (roll < 0.75) {
          const id = pick([...tenants.keys()]);
          if (id) await attempt(async () => void (await client.tenants.getTenant({ id })));
        } else if (roll < 0.9) {
          const domain = pick([...tenants.values()]);
          if (domain) await attempt(async () => void (await client.tenants.lookupTenant({ key: { case: "domain", value: domain } })));
        } else {
          await attempt(async () => void (await client.tenants.listTenants({ filter: `domain:"${run}"`, pageSize: 20 })));
        }
      }
    };

    const restart = (async () => {
      await new Promise((r) => setTimeout(r, (seconds * 1000) / 2));
      const port = Number(new URL(db.url).port);
      await db.stop();
      await new Promise((r) => setTimeout(r, 500));
      db = await startEmbeddedPostgres({ dataDir, port, database: "postgres" });
    })();
    await Promise.all([...Array.from({ length: 16 }, (_, w) => worker(w)), restart]);

    const { rows: tenantRows } = await server.sql.query(
      `SELECT tenant_id, domain FROM "Tenants" WHERE domain LIKE $1`,
      [`%-${run}.soak.example`],
    );
    const { rows: membershipRows } = await server.sql.query(
      `SELECT "Id" AS id FROM "UserTenantMapping" WHERE "tenantId" = ANY($1::uuid[])`,
      [[...tenants.keys()]],
    );
    const storedTenants = new Map(tenantRows.map((r) => [r.tenant_id as string, r.domain as string]));
    const storedMemberships = new Set(membershipRows.map((r) => r.id as string));
    const summary = {
      ...counts,
      tenantsAcknowledged: tenants.size,
      tenantsStored: storedTenants.size,
      membershipsAcknowledged: memberships.size,
      membershipDeletesAcknowledged: deletedMemberships.size,
      membershipsStored: storedMemberships.size,
    };
    console.log(`soak: ${JSON.stringify(summary)}`);

    expect(other).toEqual([]);
    // The coalesced creates ran across the restart too.
    expect(server.tenantInserter.stats.items).toBeGreaterThan(0);
    expect(server.membershipInserter.stats.items).toBeGreaterThan(0);
    expect(counts.unavailable).toBeGreaterThan(0); // the restart was felt...
    expect(counts.ok).toBeGreaterThan(100); // ...and the service recovered by itself
    for (const [id, domain] of tenants) expect(storedTenants.get(id)).toBe(domain);
    // Exactly once: one row per domain, and no row that a retry created twice.
    expect(new Set(tenantRows.map((r) => r.domain)).size).toBe(tenantRows.length);
    for (const [id] of memberships) expect(storedMemberships.has(id)).toBe(!deletedMemberships.has(id));
  }, (seconds + 120) * 1000);
});
