import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { clientsWithToken, hsToken, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET } from "../support/tokens.js";

/**
 * Who may use params schemas: platform administrators write them, check
 * and rebind tenants, and change a tenant's binding; every authenticated
 * caller reads them; a tenant administrator's params updates are validated
 * like anyone's.
 */
const actors = ["platformAdmin", "tenantAdmin", "member", "stranger"] as const;
type Actor = (typeof actors)[number];

let server: TestServer;
const as = {} as Record<Actor, TenancyClients>;
const ids = {} as Record<Actor, string>;
let tenantId: string;
const binding = "theme@1";
const theme = { type: "object", required: ["color"], properties: { color: { type: "string", pattern: "^#[0-9a-f]{6}$" } } };

beforeAll(async () => {
  server = await startTestServer({
    auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET }, issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
  });
  for (const actor of actors) {
    ids[actor] = crypto.randomUUID();
    as[actor] = clientsWithToken(server.baseUrl, await hsToken({ sub: ids[actor], admin: actor === "platformAdmin" }));
  }
  await as.platformAdmin.paramsSchemas.createParamsSchemaVersion({ name: "theme", schema: theme });
  const tenant = await as.platformAdmin.tenants.createTenant({ tenant: { name: "Auth schemas", domain: "auth-schemas.example", params: { color: "#000000" }, paramsSchema: binding } });
  tenantId = tenant.id;
  await as.platformAdmin.memberships.createMembership({ membership: { tenantId, userId: ids.tenantAdmin, roles: ["admin"] } });
  await as.platformAdmin.memberships.createMembership({ membership: { tenantId, userId: ids.member } });
});
afterAll(async () => {
  await server?.close();
});

const denied = { code: "PermissionDenied" };

describe("authorization of params schemas", () => {
  it("lets only platform administrators register versions, and records who did", async () => {
    const created = await as.platformAdmin.paramsSchemas.createParamsSchemaVersion({ name: "theme", schema: theme });
    expect(created).toMatchObject({ version: 2, createdBy: ids.platformAdmin });
    for (const actor of ["tenantAdmin", "member", "stranger"] as const) {
      expect(describeError(await rpcError(as[actor].paramsSchemas.createParamsSchemaVersion({ name: "theme", schema: theme })))).toEqual(denied);
    }
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "ParamsSchemas"`);
    expect(rows[0].n).toBe(2);
  });

  it("lets every authenticated caller read them", async () => {
    for (const actor of actors) {
      expect((await as[actor].paramsSchemas.getParamsSchema({ name: "theme", version: 1 })).schema).toEqual(theme);
      expect((await as[actor].paramsSchemas.listParamsSchemas({})).paramsSchemas.map((s) => s.name)).toEqual(["theme"]);
    }
    const anonymous = server.grpc.paramsSchemas;
    expect(describeError(await rpcError(anonymous.getParamsSchema({ name: "theme" })))).toEqual({ code: "Unauthenticated" });
  });

  it("shows params_schema.created events to every authenticated caller, as reads of schemas are", async () => {
    for (const actor of actors) {
      const page = await as[actor].events.listEvents({ types: ["params_schema.created"], pageSize: 100 });
      expect(page.events.map((e) => (e.resource.case === "paramsSchema" ? e.resource.value.paramsSchema : "?"))).toEqual(["theme@1", "theme@2"]);
    }
    // Tenant events stay as private as before.
    const strangers = await as.stranger.events.listEvents({ pageSize: 100 });
    expect(strangers.events.every((e) => e.type.startsWith("params_schema."))).toBe(true);
  });

  it("lets only platform administrators check and rebind tenants", async () => {
    for (const actor of ["tenantAdmin", "member", "stranger"] as const) {
      expect(describeError(await rpcError(as[actor].paramsSchemas.checkParamsSchema({ paramsSchema: binding })))).toEqual(denied);
      expect(describeError(await rpcError(as[actor].paramsSchemas.rebindParamsSchema({ paramsSchema: "", filter: `name = "Auth schemas"` })))).toEqual(denied);
    }
    expect((await as.platformAdmin.paramsSchemas.checkParamsSchema({ paramsSchema: binding })).failures).toEqual([]);
    expect(await as.platformAdmin.paramsSchemas.rebindParamsSchema({ paramsSchema: "theme@2", filter: `name = "Auth schemas"` })).toMatchObject({ reboundCount: 1 });
  });

  it("validates a tenant administrator's params updates, and keeps the binding theirs to read but not to change", async () => {
    const updated = await as.tenantAdmin.tenants.updateTenant({ tenant: { id: tenantId, params: { color: "#ffffff" } }, updateMask: { paths: ["params.color"] } });
    expect(updated).toMatchObject({ params: { color: "#ffffff" }, paramsSchema: "theme@2" });
    const refused = await rpcError(as.tenantAdmin.tenants.updateTenant({ tenant: { id: tenantId, params: { color: "white" } }, updateMask: { paths: ["params.color"] } }));
    expect(describeError(refused)).toEqual({ code: "InvalidArgument", fields: ["tenant.params.color"] });
    for (const request of [
      { tenant: { id: tenantId, paramsSchema: "" }, updateMask: { paths: ["params_schema"] } },
      { tenant: { id: tenantId, paramsSchema: binding } },
    ]) {
      expect(describeError(await rpcError(as.tenantAdmin.tenants.updateTenant(request)))).toEqual(denied);
    }
    expect((await as.member.tenants.getTenant({ id: tenantId })).paramsSchema).toBe("theme@2");
  });
});
