import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import pg from "pg";
import { createTestDatabase } from "../support/database.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";

/** The seed design's tables as another system may already have them, without the service's additions. */
const seedSchema = `
  CREATE TABLE "Tenants" (
    tenant_id uuid PRIMARY KEY, name varchar(255) NOT NULL UNIQUE, domain varchar(255) NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(), params jsonb);
  CREATE TABLE "UserTenantMapping" (
    "Id" uuid PRIMARY KEY DEFAULT gen_random_uuid(), "tenantId" uuid NOT NULL REFERENCES "Tenants" (tenant_id),
    "userId" uuid NOT NULL, "createdBy" uuid, "updatedBy" uuid,
    "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL DEFAULT now());
  INSERT INTO "Tenants" (tenant_id, name, domain, params)
    VALUES ('11111111-1111-4111-8111-111111111111', 'Legacy Academy', 'legacy.example', '{"plan": "old"}');
  INSERT INTO "UserTenantMapping" ("tenantId", "userId")
    VALUES ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222');
`;

let database: { url: string; drop(): Promise<void> };
let server: TestServer;
beforeAll(async () => {
  database = await createTestDatabase(inject("databaseServerUrl"));
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(seedSchema);
  await client.end();
  // startTestServer runs the real migrations on it.
  server = await startTestServer({ databaseUrl: database.url });
});
afterAll(async () => {
  await server?.close();
  await database?.drop();
});

describe("migrations on a database that already has the seed's tables", () => {
  it("keep the existing rows and serve them", async () => {
    const tenant = await server.grpc.tenants.lookupTenant({ key: { case: "domain", value: "LEGACY.example" } });
    expect(tenant).toMatchObject({ id: "11111111-1111-4111-8111-111111111111", name: "Legacy Academy", params: { plan: "old" } });
    const members = await server.grpc.memberships.listMemberships({ tenantId: tenant.id });
    expect(members.memberships.map((m) => m.userId)).toEqual(["22222222-2222-4222-8222-222222222222"]);
    const updated = await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "new" }, etag: tenant.etag } });
    expect(updated.params).toEqual({ plan: "new" });
  });

  it("add the case-insensitive name index to the existing table", async () => {
    const error = await rpcError(server.grpc.tenants.createTenant({ tenant: { name: "LEGACY ACADEMY", domain: "other.example" } }));
    expect(describeError(error)).toEqual({ code: "AlreadyExists", reason: "TENANT_NAME_TAKEN" });
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants"`);
    expect(rows[0].n).toBe(1);
  });
});
