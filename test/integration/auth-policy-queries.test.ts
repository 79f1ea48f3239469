import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MembershipService, TenantService } from "../../src/client.js";
import { authorize } from "../../src/auth/policy.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * The policy's cost: at most one query per RPC, answered from an index.
 * Each decision is made directly against the database (no server in
 * between), with every statement the ORM's connection sends recorded.
 */
let server: TestServer;
let tenant: { id: string; name: string; domain: string };
let membershipId: string;
const caller = crypto.randomUUID();

beforeAll(async () => {
  server = await startTestServer();
  tenant = await server.grpc.tenants.createTenant({ tenant: { name: `Cost ${crypto.randomUUID()}`, domain: "cost.policy.example" } });
  await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: caller, roles: ["admin"] } });
  membershipId = (await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } })).id;
  // Enough rows that a missing index would matter to the planner.
  await server.sql.query(
    `INSERT INTO "Tenants" (tenant_id, name, domain) SELECT gen_random_uuid(), 'filler ' || i, 'filler-' || i || '.example' FROM generate_series(1, 500) i`,
  );
});
afterAll(async () => {
  await server?.close();
});

const procedure = (method: { parent: { typeName: string }; name: string }) => `${method.parent.typeName}/${method.name}`;

const cases: Array<[string, () => { procedure: string; message: unknown }]> = [
  ["GetTenant", () => ({ procedure: procedure(TenantService.method.getTenant), message: { id: tenant.id } })],
  ["LookupTenant by domain", () => ({ procedure: procedure(TenantService.method.lookupTenant), message: { key: { case: "domain", value: tenant.domain } } })],
  ["LookupTenant by name", () => ({ procedure: procedure(TenantService.method.lookupTenant), message: { key: { case: "name", value: tenant.name } } })],
  [
    "UpdateTenant",
    () => ({ procedure: procedure(TenantService.method.updateTenant), message: { tenant: { id: tenant.id }, updateMask: { paths: ["params.a"] } } }),
  ],
  [
    "CreateMembership",
    () => ({ procedure: procedure(MembershipService.method.createMembership), message: { membership: { tenantId: tenant.id, userId: crypto.randomUUID() } } }),
  ],
  ["GetMembership", () => ({ procedure: procedure(MembershipService.method.getMembership), message: { id: membershipId } })],
  ["ListMemberships", () => ({ procedure: procedure(MembershipService.method.listMemberships), message: { tenantId: tenant.id, userId: "" } })],
  ["UpdateMembership", () => ({ procedure: procedure(MembershipService.method.updateMembership), message: { membership: { id: membershipId } } })],
  ["DeleteMembership", () => ({ procedure: procedure(MembershipService.method.deleteMembership), message: { id: membershipId } })],
];

describe("the policy reads with one indexed query per RPC", () => {
  it.each(cases)("%s", async (_name, request) => {
    const knex = server.orm.em.getKnex();
    const statements: Array<{ sql: string; bindings: unknown[] }> = [];
    const record = (query: { sql: string; bindings?: unknown[] }) => statements.push({ sql: query.sql, bindings: query.bindings ?? [] });
    knex.on("query", record);
    let decision;
    try {
      decision = await authorize({ userId: caller, platformAdmin: false }, request() as never, () => server.orm.em.fork());
    } finally {
      knex.off("query", record);
    }
    expect(decision).toEqual({ allowed: true });
    expect(statements).toHaveLength(1);

    // With sequential scans priced out, a plan that still has one has no index to use.
    const client = await server.sql.connect();
    try {
      await client.query("SET enable_seqscan = off");
      const positional = statements[0]!.sql.replace(/\?/g, (() => {
        let n = 0;
        return () => `$${++n}`;
      })());
      const { rows } = await client.query(`EXPLAIN ${positional}`, statements[0]!.bindings);
      const plan = rows.map((r: Record<string, string>) => r["QUERY PLAN"]).join("\n");
      expect(plan).not.toMatch(/Seq Scan/);
    } finally {
      client.release();
    }
  });
});
