import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { rpcError } from "../support/errors.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ corsOrigins: ["https://app.example"] });
});
afterAll(async () => {
  await server?.close();
});

describe("metrics", () => {
  it("counts RPCs by procedure and code, times them, and shows the database pool", async () => {
    await rpcError(server.grpc.tenants.getTenant({ id: crypto.randomUUID() }));
    await rpcError(server.grpc.tenants.getTenant({ id: crypto.randomUUID() }));
    const tag = Math.random().toString(36).slice(2, 8);
    await server.connect.tenants.createTenant({ tenant: { name: `Metrics ${tag}`, domain: `${tag}.metrics.example` } });
    const res = await fetch(`${server.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('tenancy_rpc_requests_total{procedure="tenancy.v1.TenantService/GetTenant",code="NotFound"} 2');
    expect(text).toContain('tenancy_rpc_requests_total{procedure="tenancy.v1.TenantService/CreateTenant",code="OK"} 1');
    expect(text).toMatch(/tenancy_rpc_duration_seconds_count\{procedure="tenancy.v1.TenantService\/GetTenant",code="NotFound"\} 2/);
    expect(text).toMatch(/tenancy_rpc_in_flight\{procedure="tenancy.v1.TenantService\/GetTenant"\} 0/);
    expect(text).toMatch(/tenancy_db_pool_connections_max 10/);
    expect(text).toMatch(/tenancy_db_pool_connections_used \d+/);
    // The two GetTenant calls went out one after the other: a statement each.
    expect(text).toContain('tenancy_coalesced_statements_total{kind="get_tenant"} 2');
    expect(text).toContain('tenancy_coalesced_requests_total{kind="get_tenant"} 2');
    expect(text).toContain('tenancy_coalesced_requests_total{kind="create_tenant"} 1');
  });
});

describe("request ids", () => {
  it("returns the caller's x-request-id, or a new one, in the response headers", async () => {
    let header: string | null = null;
    await server.grpc.tenants.listTenants(
      {},
      { headers: { "x-request-id": "req-123" }, onHeader: (h) => (header = h.get("x-request-id")) },
    );
    expect(header).toBe("req-123");
    const error = await rpcError(server.connect.tenants.getTenant({ id: "bad" }));
    expect(error.metadata.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("CORS", () => {
  it("answers the preflight of an allowed origin with what Connect and gRPC-Web need", async () => {
    const res = await fetch(`${server.baseUrl}/tenancy.v1.TenantService/GetTenant`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,connect-protocol-version,x-grpc-web",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const allowed = res.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const h of ["content-type", "connect-protocol-version", "x-grpc-web", "grpc-timeout", "authorization"]) {
      expect(allowed).toContain(h);
    }
    expect(res.headers.get("access-control-expose-headers")!.toLowerCase()).toContain("grpc-status");
  });

  it("gives no CORS headers to other origins", async () => {
    const res = await fetch(`${server.baseUrl}/tenancy.v1.TenantService/GetTenant`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});
