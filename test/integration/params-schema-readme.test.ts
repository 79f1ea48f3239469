import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * The README's "Configuration schemas" example, call for call, with the
 * bodies it shows, over the Connect protocol with JSON as curl sends them.
 */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function post(path: string, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.baseUrl}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

describe("README: Configuration schemas", () => {
  it("registers the example theme, binds a tenant with defaults filled in, and refuses a bad colour with its violation", async () => {
    const schema = fs.readFileSync(new URL("../../examples/params-schemas/white-label-theme.schema.json", import.meta.url), "utf8");
    const registered = await post("tenancy.v1.ParamsSchemaService/CreateParamsSchemaVersion", `{"name":"white-label","schema":${schema}}`);
    expect(registered.status).toBe(200);
    expect(registered.json).toMatchObject({ name: "white-label", version: 1, paramsSchema: "white-label@1" });

    const created = await post(
      "tenancy.v1.TenantService/CreateTenant",
      '{"tenant":{"name":"Globex","domain":"globex.example","paramsSchema":"white-label@1","params":{"theme":{"color":"#0b5fff"}}}}',
    );
    expect(created.json).toMatchObject({
      paramsSchema: "white-label@1",
      params: { theme: { color: "#0b5fff", accent: "#ffffff", font: "system", mode: "auto" } },
    });

    const refused = await post(
      "tenancy.v1.TenantService/UpdateTenant",
      `{"tenant":{"id":"${created.json.id as string}","params":{"theme":{"color":"blue"}}},"updateMask":"params.theme.color"}`,
    );
    expect(refused.status).toBe(400);
    expect(refused.json).toMatchObject({
      code: "invalid_argument",
      message: 'tenant.params.theme.color: must match the pattern ^#[0-9a-fA-F]{6}$ (the brand colour as #rrggbb); got "blue"',
      details: [
        {
          type: "google.rpc.BadRequest",
          debug: {
            fieldViolations: [
              { field: "tenant.params.theme.color", description: 'must match the pattern ^#[0-9a-fA-F]{6}$ (the brand colour as #rrggbb); got "blue"' },
            ],
          },
        },
      ],
    });
  });
});
