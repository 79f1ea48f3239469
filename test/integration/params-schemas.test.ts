import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { JsonObject } from "@bufbuild/protobuf";
import { BadRequestSchema, ParamsSchemaView, PreconditionFailureSchema, Tenant_State, type Tenant } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { holdCoalescedCreates } from "../support/coalescing.js";
import { ParamsSchemaRepository } from "../../src/params-schemas/params-schema.repository.js";
import { TenantRepository } from "../../src/tenants/tenant.repository.js";

const example = (file: string): JsonObject =>
  JSON.parse(fs.readFileSync(new URL(`../../examples/params-schemas/${file}`, import.meta.url), "utf8")) as JsonObject;
const THEME = example("white-label-theme.schema.json");
const PROGRAM = example("learning-program.schema.json");

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

let counter = 0;
const tag = () => `${++counter}-${Math.random().toString(36).slice(2, 8)}`;
/** A schema name no other test uses. */
const schemaName = (prefix: string) => `${prefix}-${tag()}`;
function unique() {
  const t = tag();
  return { name: `Schema tenant ${t}`, domain: `s-${t}.schemas.example` };
}

async function register(name: string, schema: JsonObject) {
  return server.grpc.paramsSchemas.createParamsSchemaVersion({ name, schema });
}

/** Field violations as [field, description] pairs. */
function violations(error: ConnectError): Array<[string, string]> {
  return (error.findDetails(BadRequestSchema)[0]?.fieldViolations ?? []).map((v) => [v.field, v.description]);
}

describe("CreateParamsSchemaVersion", () => {
  it("registers version 1, then 2, each with its document, its binding text and its time", async () => {
    const name = schemaName("theme");
    const v1 = await register(name, THEME);
    expect(v1).toMatchObject({ name, version: 1, paramsSchema: `${name}@1`, schema: THEME });
    expect(v1.createTime).toBeDefined();
    const v2 = await server.connect.paramsSchemas.createParamsSchemaVersion({ name, schema: { ...THEME, title: "v2" } });
    expect(v2).toMatchObject({ version: 2, paramsSchema: `${name}@2` });
    const { rows } = await server.sql.query(`SELECT version, schema FROM "ParamsSchemas" WHERE name = $1 ORDER BY version`, [name]);
    expect(rows.map((r) => r.version)).toEqual([1, 2]);
    // Stored as written: keys in the author's order.
    expect(Object.keys(rows[0].schema)).toEqual(Object.keys(THEME));
  });

  it("keeps versions immutable: a new document is a new version, the old one reads as it was", async () => {
    const name = schemaName("immutable");
    await register(name, { type: "object", properties: { a: { type: "string" } } });
    await register(name, { type: "object", properties: { a: { type: "integer" } } });
    expect((await server.grpc.paramsSchemas.getParamsSchema({ name, version: 1 })).schema).toEqual({ type: "object", properties: { a: { type: "string" } } });
    expect((await server.grpc.paramsSchemas.getParamsSchema({ name, version: 2 })).schema).toEqual({ type: "object", properties: { a: { type: "integer" } } });
    // No RPC changes a version, and the table refuses a second row for one.
    await expect(server.sql.query(`INSERT INTO "ParamsSchemas" (name, version, schema) VALUES ($1, 1, '{}')`, [name])).rejects.toThrow(/duplicate key/);
  });

  it("gives concurrent registrations of one name distinct versions", async () => {
    const name = schemaName("race");
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => register(name, { type: "object", title: `copy ${i}` })));
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    // Each version holds the document of the call that got it.
    for (const r of results) expect((await server.grpc.paramsSchemas.getParamsSchema({ name, version: r.version })).schema).toEqual(r.schema);
  });

  it.each([
    ["a type that does not exist", { type: "object", properties: { a: { type: "strin" } } }, "schema.properties.a.type", /not a valid JSON Schema/],
    ["a misspelt keyword", { type: "object", properties: { n: { type: "integer", minimun: 3 } } }, "schema", /unknown keyword: "minimun"/],
    ["a pattern that is not a regular expression", { type: "string", pattern: "([a-z" }, "schema", /does not compile/],
    ["a remote $ref", { type: "object", properties: { a: { $ref: "https://schemas.example.com/a.json" } } }, "schema", /references to other documents are not allowed/],
    ["a relative $ref to another file", { type: "object", properties: { a: { $ref: "other.json#/x" } } }, "schema", /does not resolve inside the document/],
    ["another dialect", { $schema: "http://json-schema.org/draft-07/schema#", type: "object" }, "schema.$schema", /draft 2020-12/],
    ["a non-finite number", { type: "number", maximum: Number.POSITIVE_INFINITY }, "schema.maximum", /finite/],
    ["a default that params could not hold", { type: "object", properties: { a: { type: "number", default: -0 } } }, "schema.properties.a.default", /-0/],
  ])("refuses %s with INVALID_ARGUMENT at the place in the document", async (_label, schema, field, description) => {
    const error = await rpcError(register(schemaName("bad"), schema as JsonObject));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)).toContainEqual([field, expect.stringMatching(description)]);
  });

  it("refuses a document over 256 KiB, and accepts one just under", async () => {
    const big = (bytes: number): JsonObject => {
      const base = { type: "object", description: "" };
      return { ...base, description: "x".repeat(bytes - Buffer.byteLength(JSON.stringify(base))) };
    };
    const name = schemaName("size");
    expect(Buffer.byteLength(JSON.stringify(big(256 * 1024)))).toBe(256 * 1024);
    expect((await register(name, big(256 * 1024))).version).toBe(1);
    const error = await rpcError(register(name, big(256 * 1024 + 1)));
    expect(violations(error)).toEqual([["schema", expect.stringContaining("at most 262144 bytes")]]);
  });

  it.each([
    ["", "is required"],
    ["Program", "starting with a letter"],
    ["a@b", "starting with a letter"],
    ["x".repeat(64), "1 to 63"],
  ])("refuses the name %j", async (name, description) => {
    const error = await rpcError(register(name, THEME));
    expect(violations(error)).toEqual([["name", expect.stringContaining(description)]]);
  });

  it("refuses a missing document", async () => {
    const error = await rpcError(server.grpc.paramsSchemas.createParamsSchemaVersion({ name: schemaName("none") }));
    expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["schema"] });
  });

  it("registers once per request_id", async () => {
    const name = schemaName("retry");
    const requestId = crypto.randomUUID();
    const first = await server.grpc.paramsSchemas.createParamsSchemaVersion({ name, schema: THEME, requestId });
    const again = await server.grpc.paramsSchemas.createParamsSchemaVersion({ name, schema: THEME, requestId });
    expect(again).toEqual(first);
    const list = await server.grpc.paramsSchemas.listParamsSchemas({ name });
    expect(list.paramsSchemas.map((s) => s.version)).toEqual([1]);
    const reused = await rpcError(server.grpc.paramsSchemas.createParamsSchemaVersion({ name, schema: PROGRAM, requestId }));
    expect(describeError(reused)).toEqual({ code: "AlreadyExists", reason: "REQUEST_ID_REUSED" });
  });
});

describe("GetParamsSchema and ListParamsSchemas", () => {
  it("gets a version or the latest, and NOT_FOUND for what does not exist", async () => {
    const name = schemaName("get");
    await register(name, { type: "object", title: "one" });
    await register(name, { type: "object", title: "two" });
    expect((await server.grpc.paramsSchemas.getParamsSchema({ name })).schema).toEqual({ type: "object", title: "two" });
    expect((await server.grpc.paramsSchemas.getParamsSchema({ name, version: 1 })).schema).toEqual({ type: "object", title: "one" });
    for (const request of [{ name, version: 3 }, { name: schemaName("missing") }]) {
      expect(describeError(await rpcError(server.grpc.paramsSchemas.getParamsSchema(request)))).toEqual({ code: "NotFound", reason: "PARAMS_SCHEMA_NOT_FOUND" });
    }
    expect(describeError(await rpcError(server.grpc.paramsSchemas.getParamsSchema({ name, version: -1 })))).toEqual({ code: "InvalidArgument", fields: ["version"] });
  });

  it("pages through the versions of a name, without documents unless the view is FULL", async () => {
    const name = schemaName("versions");
    for (let i = 0; i < 5; i++) await register(name, { type: "object", title: `v${i + 1}` });
    const versions: number[] = [];
    let pageToken = "";
    do {
      const page = await server.grpc.paramsSchemas.listParamsSchemas({ name, pageSize: 2, pageToken });
      for (const s of page.paramsSchemas) {
        versions.push(s.version);
        expect(s.schema).toBeUndefined();
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(versions).toEqual([1, 2, 3, 4, 5]);
    const full = await server.grpc.paramsSchemas.listParamsSchemas({ name, view: ParamsSchemaView.FULL, pageSize: 1 });
    expect(full.paramsSchemas[0]?.schema).toEqual({ type: "object", title: "v1" });
    const token = await rpcError(server.grpc.paramsSchemas.listParamsSchemas({ name: schemaName("other"), pageToken: full.nextPageToken }));
    expect(describeError(token)).toEqual({ code: "InvalidArgument", fields: ["page_token"] });
  });

  it("lists each name once with its latest version, by name, paged", async () => {
    const prefix = `zz-list-${tag()}`;
    for (const suffix of ["a", "b", "c"]) {
      await register(`${prefix}-${suffix}`, { type: "object" });
      if (suffix !== "b") await register(`${prefix}-${suffix}`, { type: "object", title: "newer" });
    }
    const seen: Array<[string, number]> = [];
    let pageToken = "";
    do {
      const page = await server.grpc.paramsSchemas.listParamsSchemas({ pageSize: 2, pageToken });
      seen.push(...page.paramsSchemas.map((s): [string, number] => [s.name, s.version]));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen.filter(([n]) => n.startsWith(prefix))).toEqual([
      [`${prefix}-a`, 2],
      [`${prefix}-b`, 1],
      [`${prefix}-c`, 2],
    ]);
    const names = seen.map(([n]) => n);
    expect(names).toEqual([...names].sort());
  });
});

describe("writes of tenants bound to a schema", () => {
  let theme: string;
  let program: string;
  beforeAll(async () => {
    theme = (await register(schemaName("white-label"), THEME)).paramsSchema;
    program = (await register(schemaName("program"), PROGRAM)).paramsSchema;
  });

  const goodTheme = { theme: { color: "#1a73e8" }, display_name: "Acme" };

  it("CreateTenant stores valid params with the schema's defaults filled in, and shows the binding", async () => {
    const created = await server.grpc.tenants.createTenant({ tenant: { ...unique(), params: goodTheme, paramsSchema: theme } });
    const filled = { theme: { color: "#1a73e8", accent: "#ffffff", font: "system", mode: "auto" }, display_name: "Acme" };
    expect(created.params).toEqual(filled);
    expect(created.paramsSchema).toBe(theme);
    const { rows } = await server.sql.query(`SELECT params, params_schema_name, params_schema_version FROM "Tenants" WHERE tenant_id = $1`, [created.id]);
    expect(rows[0]).toEqual({ params: filled, params_schema_name: theme.split("@")[0], params_schema_version: 1 });
    // Reads return the binding too, through every path.
    expect((await server.grpc.tenants.getTenant({ id: created.id })).paramsSchema).toBe(theme);
    expect((await server.connect.tenants.lookupTenant({ key: { case: "domain", value: created.domain } })).paramsSchema).toBe(theme);
  });

  it("fills defaults at every level the data reaches, never over values that are set", async () => {
    const created = await server.grpc.tenants.createTenant({
      tenant: { ...unique(), params: { plan: "pro", language: "en", seats: 30, enrollment: { approval: "manual" }, grading: { scale: "percent" }, analytics: false }, paramsSchema: program },
    });
    expect(created.params).toEqual({
      plan: "pro",
      language: "en",
      seats: 30,
      enrollment: { approval: "manual", open: true },
      grading: { scale: "percent", retakes: 1 },
      analytics: false,
      timezone: "UTC",
      certificates: false,
      session_minutes: 60,
      features: [],
    });
  });

  it("CreateTenant refuses invalid params with one violation per problem, at its path into params", async () => {
    const error = await rpcError(
      server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { theme: { color: "red", font: "comic" }, logo: "x" }, paramsSchema: theme } }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)).toEqual([
      ["tenant.params.logo", 'is not allowed here: the schema allows only "theme", "display_name", "custom_css"'],
      ["tenant.params.theme.color", 'must match the pattern ^#[0-9a-fA-F]{6}$ (the brand colour as #rrggbb); got "red"'],
      ["tenant.params.theme.font", 'must be one of "system", "serif", "sans-serif", "monospace"; got "comic"'],
    ]);
  });

  it("reports name, domain and params problems together", async () => {
    const error = await rpcError(server.grpc.tenants.createTenant({ tenant: { name: "", domain: "bad domain", params: {}, paramsSchema: theme } }));
    expect(violations(error).map(([field]) => field)).toEqual(["tenant.name", "tenant.domain", "tenant.params.theme"]);
  });

  it.each([
    ["program@", "must be \"<name>@<version>\""],
    ["Program@1", "must be \"<name>@<version>\""],
    ["program@0", "must be \"<name>@<version>\""],
    ["nobody-registered-this@1", "no params schema nobody-registered-this@1 is registered"],
  ])("refuses the binding %j at tenant.params_schema", async (binding, description) => {
    const error = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), paramsSchema: binding } }));
    expect(violations(error)).toEqual([["tenant.params_schema", expect.stringContaining(description)]]);
  });

  it("refuses a version that does not exist yet, then accepts it once registered", async () => {
    const name = schemaName("later");
    const error = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), paramsSchema: `${name}@1` } }));
    expect(violations(error)).toEqual([["tenant.params_schema", expect.stringContaining("is registered")]]);
    await register(name, { type: "object" });
    expect((await server.grpc.tenants.createTenant({ tenant: { ...unique(), paramsSchema: `${name}@1` } })).paramsSchema).toBe(`${name}@1`);
  });

  it("validates the coalesced create batch: each concurrent create gets its own answer", async () => {
    const before = server.tenantInserter.stats;
    const requests = Array.from({ length: 24 }, (_, i) => ({
      tenant: { ...unique(), params: i % 3 === 0 ? { theme: { color: "nope" } } : { theme: { color: "#00aa00" } }, paramsSchema: theme },
    }));
    const outcomes = await Promise.all(
      requests.map((r) =>
        server.grpc.tenants.createTenant(r).then(
          (t) => ({ ok: t.params }),
          (e: unknown) => ({ fields: violations(ConnectError.from(e)).map(([f]) => f) }),
        ),
      ),
    );
    outcomes.forEach((outcome, i) => {
      if (i % 3 === 0) expect(outcome).toEqual({ fields: ["tenant.params.theme.color"] });
      else expect(outcome).toEqual({ ok: { theme: { color: "#00aa00", accent: "#ffffff", font: "system", mode: "auto" } } });
    });
    const after = server.tenantInserter.stats;
    // The valid ones went through the batch inserter, in fewer statements than creates.
    expect(after.items - before.items).toBe(16);
    expect(after.batches - before.batches).toBeLessThan(16);
  });

  it("validates creates with a request_id, and a retry returns the stored answer", async () => {
    const requestId = crypto.randomUUID();
    const refused = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { theme: {} }, paramsSchema: theme }, requestId }));
    expect(violations(refused)).toEqual([["tenant.params.theme.color", "is required (the brand colour as #rrggbb)"]]);
    // A refused request leaves its request_id unused.
    const request = { tenant: { ...unique(), params: goodTheme, paramsSchema: theme }, requestId };
    const created = await server.grpc.tenants.createTenant(request);
    expect(created.params).toMatchObject({ theme: { accent: "#ffffff" } });
    expect(await server.grpc.tenants.createTenant(request)).toEqual(created);
  });

  it("validates creates that carry a deadline", async () => {
    const error = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { theme: { color: 3 } }, paramsSchema: theme } }, { timeoutMs: 10_000 }));
    expect(violations(error)).toEqual([["tenant.params.theme.color", "must be a string (the brand colour as #rrggbb), not the number 3"]]);
  });

  describe("UpdateTenant", () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await server.grpc.tenants.createTenant({ tenant: { ...unique(), params: goodTheme, paramsSchema: theme } });
    });

    it("validates a whole new params (mask `params`) and fills defaults", async () => {
      const updated = await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { theme: { color: "#000000", mode: "dark" } } }, updateMask: { paths: ["params"] } });
      expect(updated.params).toEqual({ theme: { color: "#000000", mode: "dark", accent: "#ffffff", font: "system" } });
      const error = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { display_name: "" } }, updateMask: { paths: ["params"] } }));
      expect(violations(error)).toEqual([
        ["tenant.params.theme", "is required"],
        ["tenant.params.display_name", "must be at least 1 character long (the name shown in the header)"],
      ]);
    });

    it("validates the resulting document of a `params.<key>` update", async () => {
      const updated = await server.grpc.tenants.updateTenant({
        tenant: { id: tenant.id, params: { theme: { color: "#123456" } } },
        updateMask: { paths: ["params.theme.color"] },
      });
      expect(updated.params).toMatchObject({ theme: { color: "#123456" } });
      const bad = await rpcError(
        server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { theme: { color: "blue" } } }, updateMask: { paths: ["params.theme.color"] } }),
      );
      expect(violations(bad)).toEqual([["tenant.params.theme.color", expect.stringContaining("must match the pattern")]]);
      // Removing a required key (absent from the request's params) is refused too.
      const removed = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: {} }, updateMask: { paths: ["params.theme.color"] } }));
      expect(violations(removed)).toEqual([["tenant.params.theme.color", "is required (the brand colour as #rrggbb)"]]);
      // The JSON mask form (an empty mask with params set) is the whole-params form.
      const empty = await rpcError(server.connect.tenants.updateTenant({ tenant: { id: tenant.id, params: { theme: { color: "#123456" }, extra: 1 } } }));
      expect(violations(empty)).toEqual([["tenant.params.extra", expect.stringContaining("is not allowed here")]]);
      const stored = await server.grpc.tenants.getTenant({ id: tenant.id });
      expect(stored.params).toMatchObject({ theme: { color: "#123456" } });
    });

    it("leaves params alone on changes of state, name and domain, even when they would not pass", async () => {
      // A row that breaks its schema (written around the service) stays as it is.
      await server.sql.query(`UPDATE "Tenants" SET params = '{"theme": {"color": "legacy"}}' WHERE tenant_id = $1`, [tenant.id]);
      const suspended = await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, state: Tenant_State.SUSPENDED }, updateMask: { paths: ["state"] } });
      expect(suspended.params).toEqual({ theme: { color: "legacy" } });
      const renamed = await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, name: `${tenant.name} renamed`, state: Tenant_State.ACTIVE }, updateMask: { paths: ["name", "state"] } });
      expect(renamed.params).toEqual({ theme: { color: "legacy" } });
      // Reads never validate.
      expect((await server.grpc.tenants.getTenant({ id: tenant.id })).params).toEqual({ theme: { color: "legacy" } });
      const listed = await server.grpc.tenants.listTenants({ filter: `name = "${tenant.name} renamed"` });
      expect(listed.tenants.map((t) => t.params)).toEqual([{ theme: { color: "legacy" } }]);
      await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: goodTheme }, updateMask: { paths: ["params"] } });
    });

    it("binds, rebinds and unbinds with mask path params_schema, validating the current params in the same transaction", async () => {
      const t = await server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { plan: "pro" } } });
      expect(t.paramsSchema).toBe("");
      const refused = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: t.id, paramsSchema: theme }, updateMask: { paths: ["params_schema"] } }));
      expect(violations(refused)).toEqual([
        ["tenant.params.theme", "is required"],
        ["tenant.params.plan", expect.stringContaining("is not allowed here")],
      ]);
      expect((await server.grpc.tenants.getTenant({ id: t.id })).paramsSchema).toBe("");
      // Binding and new params in one update: the result is what is checked.
      const bound = await server.grpc.tenants.updateTenant({ tenant: { id: t.id, paramsSchema: theme, params: goodTheme }, updateMask: { paths: ["params", "params_schema"] } });
      expect(bound).toMatchObject({ paramsSchema: theme, params: { theme: { accent: "#ffffff" } } });
      // An empty mask includes a non-empty params_schema.
      const v2 = (await register(theme.split("@")[0]!, { ...THEME, properties: { ...(THEME.properties as JsonObject), display_name: { type: "string", maxLength: 2 } } })).paramsSchema;
      const tooLong = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: t.id, paramsSchema: v2 } }));
      expect(violations(tooLong)).toEqual([["tenant.params.display_name", "must be at most 2 characters long"]]);
      const unbound = await server.grpc.tenants.updateTenant({ tenant: { id: t.id, params: { anything: ["goes"] } }, updateMask: { paths: ["params", "params_schema"] } });
      expect(unbound).toMatchObject({ paramsSchema: "", params: { anything: ["goes"] } });
    });
  });

  it("validates with each version compiled once per process", async () => {
    const name = schemaName("once");
    const binding = (await register(name, THEME)).paramsSchema;
    const before = server.paramsSchemas.compiles;
    await Promise.all(Array.from({ length: 10 }, () => server.grpc.tenants.createTenant({ tenant: { ...unique(), params: goodTheme, paramsSchema: binding } })));
    // Registered here: the registration's compile is reused.
    expect(server.paramsSchemas.compiles).toBe(before);
    // A version registered by another instance (written straight to the table) is compiled on first use, once.
    await server.sql.query(`INSERT INTO "ParamsSchemas" (name, version, schema) VALUES ($1, 2, $2)`, [name, JSON.stringify(THEME)]);
    await Promise.all(Array.from({ length: 10 }, () => server.grpc.tenants.createTenant({ tenant: { ...unique(), params: goodTheme, paramsSchema: `${name}@2` } })));
    expect(server.paramsSchemas.compiles).toBe(before + 1);
  });

  // The write benchmark's bound creates (bench/run.ts, create-tenant-schema)
  // cost what a free-form create costs plus validation, only as long as
  // these hold: nothing is read from "ParamsSchemas" per request, and bound
  // creates share the coalesced INSERT with every other create.
  it("reads no schema per create once a version is compiled, and sends bound and free-form creates in one coalesced INSERT", async () => {
    const name = schemaName("hot-path");
    const binding = (await register(name, PROGRAM)).paramsSchema;
    const params = { plan: "pro", language: "en", seats: 10 };
    const reads = vi.spyOn(ParamsSchemaRepository.prototype, "find");
    const inserts = vi.spyOn(TenantRepository.prototype, "insertMany");
    try {
      const held = await holdCoalescedCreates(server, "tenants", () => server.grpc.tenants.createTenant({ tenant: unique() }));
      const created: Tenant[] = await held.together(
        Array.from({ length: 6 }, (_, i) => server.grpc.tenants.createTenant({ tenant: { ...unique(), params, paramsSchema: i % 2 === 0 ? binding : "" } })),
      );
      await held.blockers();
      expect(created.map((t) => t.paramsSchema)).toEqual([binding, "", binding, "", binding, ""]);
      // Registered by this process: its compiled form is used, nothing is read.
      expect(reads).not.toHaveBeenCalled();
      const batchOf = (id: string) => inserts.mock.calls.findIndex(([tenants]) => tenants.some((t) => t.id === id));
      const batch = batchOf(created[0]!.id);
      expect(batch).toBeGreaterThanOrEqual(0);
      expect(created.map((t) => batchOf(t.id))).toEqual(created.map(() => batch));

      // A version registered by another instance is read once, on first use.
      await server.sql.query(`INSERT INTO "ParamsSchemas" (name, version, schema) VALUES ($1, 2, $2)`, [name, JSON.stringify(PROGRAM)]);
      for (let i = 0; i < 3; i++) await server.grpc.tenants.createTenant({ tenant: { ...unique(), params, paramsSchema: `${name}@2` } });
      expect(reads).toHaveBeenCalledTimes(1);
    } finally {
      reads.mockRestore();
      inserts.mockRestore();
    }
  });

  it("filters tenants by params_schema", async () => {
    const name = schemaName("filter");
    const binding = (await register(name, { type: "object" })).paramsSchema;
    const a = await server.grpc.tenants.createTenant({ tenant: { ...unique(), paramsSchema: binding } });
    const found = await server.grpc.tenants.listTenants({ filter: `params_schema = "${binding}"` });
    expect(found.tenants.map((t) => t.id)).toEqual([a.id]);
    const byName = await server.grpc.tenants.listTenants({ filter: `params_schema:"${name}@"` });
    expect(byName.tenants.map((t) => t.id)).toEqual([a.id]);
    const error = await rpcError(server.grpc.tenants.listTenants({ filter: `params_schema > "a"` }));
    expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["filter"] });
  });
});

describe("violations name the exact field, for each kind of keyword", () => {
  let binding: string;
  const schema: JsonObject = {
    type: "object",
    properties: {
      count: { type: "integer" },
      level: { enum: ["low", "high"] },
      code: { type: "string", pattern: "^[A-Z]{3}$" },
      size: { type: "number", minimum: 1 },
      ratio: { type: "number", exclusiveMaximum: 1 },
      step: { type: "number", multipleOf: 5 },
      email: { type: "string", format: "email" },
      since: { type: "string", format: "date-time" },
      kind: { const: "course" },
      title: { type: "string", maxLength: 5 },
      owner: { type: "object", required: ["id"], properties: { id: { type: "string", format: "uuid" }, address: { type: "object", properties: { zip: { type: "string", minLength: 5 } } } } },
      courses: { type: "array", minItems: 1, items: { type: "object", additionalProperties: false, properties: { code: { type: "string" } } } },
      labels: { type: "array", uniqueItems: true },
      contact: { oneOf: [{ type: "string", format: "email" }, { type: "object", required: ["phone"], properties: { phone: { type: "string" } } }] },
      limits: { type: "object", propertyNames: { pattern: "^[a-z]+$" }, dependentRequired: { max: ["min"] } },
      "odd key.x": { type: "boolean" },
    },
    required: ["count"],
    additionalProperties: false,
  };
  beforeAll(async () => {
    binding = (await register(schemaName("keywords"), schema)).paramsSchema;
  });

  it.each<[string, JsonObject, Array<[string, string]>]>([
    ["type", { count: "3" }, [["tenant.params.count", 'must be an integer, not the string "3"']]],
    ["required", {}, [["tenant.params.count", "is required"]]],
    ["enum", { count: 1, level: "mid" }, [["tenant.params.level", 'must be one of "low", "high"; got "mid"']]],
    ["pattern", { count: 1, code: "ab" }, [["tenant.params.code", 'must match the pattern ^[A-Z]{3}$; got "ab"']]],
    ["minimum", { count: 1, size: 0 }, [["tenant.params.size", "must be at least 1; got 0"]]],
    ["exclusiveMaximum", { count: 1, ratio: 1 }, [["tenant.params.ratio", "must be less than 1; got 1"]]],
    ["multipleOf", { count: 1, step: 7 }, [["tenant.params.step", "must be a multiple of 5; got 7"]]],
    ["additionalProperties", { count: 1, colour: "red" }, [["tenant.params.colour", expect.stringMatching(/^is not allowed here: the schema allows only "count", "level"/) as never]]],
    ["format email", { count: 1, email: "not-an-email" }, [["tenant.params.email", 'must be an email address; got "not-an-email"']]],
    ["format date-time", { count: 1, since: "yesterday" }, [["tenant.params.since", expect.stringContaining("RFC 3339") as never]]],
    ["const", { count: 1, kind: "module" }, [["tenant.params.kind", 'must be "course"; got "module"']]],
    ["maxLength", { count: 1, title: "too long" }, [["tenant.params.title", "must be at most 5 characters long"]]],
    ["nested required and format", { count: 1, owner: { address: { zip: "12" } } }, [
      ["tenant.params.owner.id", "is required"],
      ["tenant.params.owner.address.zip", "must be at least 5 characters long"],
    ]],
    ["arrays: minItems", { count: 1, courses: [] }, [["tenant.params.courses", "must have at least 1 item"]]],
    ["arrays: an item's keyword", { count: 1, courses: [{ code: "A" }, { code: 2 }, { code: "C", x: 1 }] }, [
      ["tenant.params.courses[1].code", "must be a string, not the number 2"],
      ["tenant.params.courses[2].x", 'is not allowed here: the schema allows only "code"'],
    ]],
    ["uniqueItems", { count: 1, labels: ["a", "b", "a"] }, [["tenant.params.labels", "must not contain duplicates (items 0 and 2 are equal)"]]],
    ["oneOf matching none", { count: 1, contact: { phone: 5 } }, [
      ["tenant.params.contact", "must match exactly one of the 2 alternatives of the schema, and matches none: (1) must be a string, not an object; (2) phone must be a string, not the number 5"],
    ]],
    ["propertyNames", { count: 1, limits: { Max: 1 } }, [["tenant.params.limits.Max", 'is not an allowed key: must match the pattern ^[a-z]+$; got "Max"']]],
    ["dependentRequired", { count: 1, limits: { max: 3 } }, [["tenant.params.limits.min", 'is required when "max" is set']]],
    ["a key that needs quoting", { count: 1, "odd key.x": "yes" }, [["tenant.params.`odd key.x`", 'must be true or false, not the string "yes"']]],
  ])("%s", async (_label, params, expected) => {
    const error = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), params, paramsSchema: binding } }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(violations(error)).toEqual(expected);
  });
});

describe("CheckParamsSchema and RebindParamsSchema", () => {
  /** A group of tenants of its own (params.group), some of which a strict version refuses. */
  async function group(size: number, bad: (i: number) => boolean) {
    const id = tag();
    const tenants: Tenant[] = [];
    for (let i = 0; i < size; i++) {
      tenants.push(await server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { group: id, seats: bad(i) ? -i - 1 : i + 1 } } }));
    }
    return { filter: `params.group = "${id}"`, tenants };
  }
  let strict: string;
  beforeAll(async () => {
    strict = (
      await register(schemaName("strict"), {
        type: "object",
        required: ["group", "seats"],
        properties: { group: { type: "string" }, seats: { type: "integer", minimum: 1 }, region: { type: "string", default: "eu" } },
      })
    ).paramsSchema;
  });

  it("reports, page by page, exactly the tenants that would fail, with their violations, changing nothing", async () => {
    const { filter, tenants } = await group(9, (i) => i % 2 === 0);
    const failing = tenants.filter((_, i) => i % 2 === 0);
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: strict, filter, pageSize: 2, pageToken });
      expect(page.failures.length).toBeLessThanOrEqual(2);
      for (const f of page.failures) {
        const tenant = tenants.find((t) => t.id === f.tenantId)!;
        expect(f).toMatchObject({ tenantName: tenant.name, paramsSchema: "" });
        expect(f.violations.map((v) => [v.field, v.description])).toEqual([["params.seats", `must be at least 1; got ${tenant.params!.seats}`]]);
        seen.push(f.tenantId);
      }
      pageToken = page.nextPageToken;
      pages += 1;
    } while (pageToken);
    expect(seen.sort()).toEqual(failing.map((t) => t.id).sort());
    expect(pages).toBeGreaterThanOrEqual(3);
    // Nothing changed.
    for (const t of tenants) expect(await server.grpc.tenants.getTenant({ id: t.id })).toEqual(t);
    const token = await rpcError(server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: strict, filter: `${filter} AND name:"x"`, pageSize: 2, pageToken: (await server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: strict, filter, pageSize: 1 })).nextPageToken }));
    expect(describeError(token)).toEqual({ code: "InvalidArgument", fields: ["page_token"] });
  });

  it("examines at most 1,000 tenants per page: sparse failures come with a token to continue", async () => {
    const id = tag();
    // 1,500 tenants straight into the table; two of them fail, one on each side of the first 1,000.
    await server.sql.query(
      `INSERT INTO "Tenants" (tenant_id, name, domain, params)
       SELECT md5($1 || i)::uuid, 'Bulk ' || $1 || ' ' || i, 'bulk-' || i || '-' || $1 || '.schemas.example',
              jsonb_build_object('group', $1::text, 'seats', CASE WHEN i IN (3, 1400) THEN 0 ELSE i END)
         FROM generate_series(1, 1500) i`,
      [id],
    );
    const ordered = (await server.sql.query(`SELECT tenant_id FROM "Tenants" WHERE params->>'group' = $1 ORDER BY tenant_id`, [id])).rows.map((r) => r.tenant_id as string);
    const failing = (await server.sql.query(`SELECT tenant_id FROM "Tenants" WHERE params->>'group' = $1 AND (params->>'seats')::int = 0`, [id])).rows.map((r) => r.tenant_id as string);
    const filter = `params.group = "${id}"`;
    const first = await server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: strict, filter, pageSize: 50 });
    expect(first.checkedCount).toBe(1000);
    expect(first.nextPageToken).not.toBe("");
    expect(first.failures.map((f) => f.tenantId).sort()).toEqual(failing.filter((t) => ordered.indexOf(t) < 1000).sort());
    const second = await server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: strict, filter, pageSize: 50, pageToken: first.nextPageToken });
    expect(second.checkedCount).toBe(500);
    expect(second.nextPageToken).toBe("");
    expect([...first.failures, ...second.failures].map((f) => f.tenantId).sort()).toEqual([...failing].sort());
  });

  it("refuses to rebind when any tenant fails, listing the failures, and changes nothing", async () => {
    const { filter, tenants } = await group(5, (i) => i === 1 || i === 3);
    const error = await rpcError(server.grpc.paramsSchemas.rebindParamsSchema({ filter, paramsSchema: strict }));
    expect(describeError(error)).toEqual({ code: "FailedPrecondition", reason: "PARAMS_SCHEMA_VIOLATIONS" });
    const listed = error.findDetails(PreconditionFailureSchema)[0]!.violations.map((v) => [v.type, v.subject, v.description]);
    expect(listed.sort()).toEqual(
      [tenants[1]!, tenants[3]!].map((t) => ["PARAMS_SCHEMA", `tenants/${t.id}`, `params.seats: must be at least 1; got ${t.params!.seats}`]).sort(),
    );
    expect(error.message).toContain("2 tenant(s)");
    for (const t of tenants) expect(await server.grpc.tenants.getTenant({ id: t.id })).toEqual(t);
  });

  it("rebinds every matching tenant at once, filling defaults; a second rebind changes nothing; empty unbinds", async () => {
    const { filter, tenants } = await group(4, () => false);
    const deleted = tenants[3]!;
    await server.grpc.tenants.deleteTenant({ id: deleted.id });
    const result = await server.grpc.paramsSchemas.rebindParamsSchema({ filter, paramsSchema: strict });
    expect(result).toMatchObject({ matchedCount: 3, reboundCount: 3 });
    for (const t of tenants.slice(0, 3)) {
      const now = await server.grpc.tenants.getTenant({ id: t.id });
      expect(now).toMatchObject({ paramsSchema: strict, params: { ...t.params, region: "eu" } });
      expect(now.etag).not.toBe(t.etag);
    }
    // Deleted tenants are left out.
    expect((await server.grpc.tenants.getTenant({ id: deleted.id })).paramsSchema).toBe("");
    const etags = await Promise.all(tenants.slice(0, 3).map(async (t) => (await server.grpc.tenants.getTenant({ id: t.id })).etag));
    expect(await server.grpc.paramsSchemas.rebindParamsSchema({ filter, paramsSchema: strict })).toMatchObject({ matchedCount: 3, reboundCount: 0 });
    expect(await Promise.all(tenants.slice(0, 3).map(async (t) => (await server.grpc.tenants.getTenant({ id: t.id })).etag))).toEqual(etags);
    // Bound tenants now refuse what the version refuses.
    const refused = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: tenants[0]!.id, params: { seats: 0 } }, updateMask: { paths: ["params.seats"] } }));
    expect(violations(refused)).toEqual([["tenant.params.seats", "must be at least 1; got 0"]]);
    expect(await server.grpc.paramsSchemas.rebindParamsSchema({ filter, paramsSchema: "" })).toMatchObject({ matchedCount: 3, reboundCount: 3 });
    expect((await server.grpc.tenants.getTenant({ id: tenants[0]!.id })).paramsSchema).toBe("");
  });

  it("answers NOT_FOUND for a version that does not exist and INVALID_ARGUMENT for bad arguments", async () => {
    const missing = `${schemaName("nope")}@1`;
    expect(describeError(await rpcError(server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: missing })))).toEqual({ code: "NotFound", reason: "PARAMS_SCHEMA_NOT_FOUND" });
    expect(describeError(await rpcError(server.grpc.paramsSchemas.rebindParamsSchema({ paramsSchema: missing, filter: 'name = "x"' })))).toEqual({
      code: "NotFound",
      reason: "PARAMS_SCHEMA_NOT_FOUND",
    });
    expect(describeError(await rpcError(server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: "" })))).toEqual({ code: "InvalidArgument", fields: ["params_schema"] });
    expect(describeError(await rpcError(server.grpc.paramsSchemas.checkParamsSchema({ paramsSchema: strict, filter: "seats >" })))).toEqual({ code: "InvalidArgument", fields: ["filter"] });
    expect(describeError(await rpcError(server.grpc.paramsSchemas.rebindParamsSchema({ paramsSchema: "x@y" })))).toEqual({ code: "InvalidArgument", fields: ["params_schema"] });
  });
});

describe("the change feed", () => {
  const actor = crypto.randomUUID();
  const latest = async () => (await server.grpc.events.listEvents({ pageSize: 1, orderBy: "sequence desc" })).latestSequence;
  async function eventsAfter(after: bigint) {
    const page = await server.grpc.events.listEvents({ pageSize: 100, orderBy: "sequence desc" });
    return page.events.filter((e) => e.sequence > after).reverse();
  }

  it("records a registration as params_schema.created (without the document), and answers with its sequence", async () => {
    const before = await latest();
    const name = schemaName("feed");
    let header: string | null = null;
    const created = await server.grpc.paramsSchemas.createParamsSchemaVersion({ name, schema: THEME }, { headers: { "x-actor-id": actor }, onHeader: (h) => (header = h.get("tenancy-event-sequence")) });
    const events = await eventsAfter(before);
    expect(events.map((e) => e.type)).toEqual(["params_schema.created"]);
    const [event] = events;
    expect(String(event!.sequence)).toBe(header);
    expect(event).toMatchObject({ tenantId: "", actor, resource: { case: "paramsSchema", value: { name, version: 1, paramsSchema: `${name}@1`, createdBy: actor } } });
    expect(event!.resource.case === "paramsSchema" && event!.resource.value.schema).toBe(undefined);
    expect(created.version).toBe(1);
    const filtered = await server.grpc.events.listEvents({ types: ["params_schema.created"], pageSize: 1000 });
    expect(filtered.events.some((e) => e.sequence === event!.sequence)).toBe(true);
  });

  it("shows a tenant's binding in its events, and a change of binding as the changed field params_schema", async () => {
    const binding = (await register(schemaName("feed-bind"), THEME)).paramsSchema;
    const before = await latest();
    const tenant = await server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { theme: { color: "#000000" } }, paramsSchema: binding } });
    await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, paramsSchema: "" }, updateMask: { paths: ["params_schema"] } });
    await server.grpc.paramsSchemas.rebindParamsSchema({ filter: `name = "${tenant.name}"`, paramsSchema: binding });
    const events = (await eventsAfter(before)).filter((e) => e.tenantId === tenant.id);
    expect(events.map((e) => [e.type, e.resource.case === "tenant" ? e.resource.value.paramsSchema : "?", e.changedFields?.paths ?? []])).toEqual([
      ["tenant.created", binding, []],
      ["tenant.updated", "", ["params_schema"]],
      ["tenant.updated", binding, ["params_schema"]],
    ]);
  });
});
