import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createTenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

function tag() {
  return Math.random().toString(36).slice(2, 10);
}

describe("one port, every protocol", () => {
  it.each([
    ["connect", "1.1", false],
    ["connect", "1.1", true],
    ["connect", "2", true],
    ["grpc-web", "1.1", true],
    ["grpc-web", "2", false],
    ["grpc", "2", true],
  ] as const)("serves %s over HTTP/%s (binary: %s)", async (protocol, httpVersion, useBinaryFormat) => {
    const clients = createTenancyClients({ baseUrl: server.baseUrl, protocol, httpVersion, useBinaryFormat });
    const t = tag();
    const created = await clients.tenants.createTenant({ tenant: { name: `Proto ${t}`, domain: `${t}.proto.example`, params: { p: protocol } } });
    const got = await clients.tenants.getTenant({ id: created.id });
    expect(got).toEqual(created);
    const listed = await clients.tenants.listTenants({ filter: `domain = "${t}.proto.example"` });
    expect(listed.tenants.map((x) => x.id)).toEqual([created.id]);
    const error = await rpcError(clients.tenants.getTenant({ id: "bad" }));
    expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["id"] });
  });

  it("answers a plain JSON POST over HTTP/1.1, as curl sends it", async () => {
    const t = tag();
    const res = await fetch(`${server.baseUrl}/tenancy.v1.TenantService/CreateTenant`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": `curl-${t}` },
      body: JSON.stringify({ tenant: { name: `Curl ${t}`, domain: `${t}.curl.example`, params: { a: [1, "two"] } } }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe(`curl-${t}`);
    const body = (await res.json()) as { id: string; createTime: string };
    expect(body).toMatchObject({ name: `Curl ${t}`, domain: `${t}.curl.example`, params: { a: [1, "two"] } });
    expect(body.createTime).toMatch(/^\d{4}-\d{2}-\d{2}T/);

    const get = await fetch(`${server.baseUrl}/tenancy.v1.TenantService/GetTenant`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: body.id }),
    });
    expect(((await get.json()) as { id: string }).id).toBe(body.id);

    const bad = await fetch(`${server.baseUrl}/tenancy.v1.TenantService/GetTenant`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: "nope" }),
    });
    expect(bad.status).toBe(400);
    const error = (await bad.json()) as { code: string; details: { type: string }[] };
    expect(error.code).toBe("invalid_argument");
    expect(error.details[0]?.type).toBe("google.rpc.BadRequest");
  });

  it("answers 404 on unknown paths that are no RPC's (unknown methods: see malformed.test.ts)", async () => {
    expect((await fetch(`${server.baseUrl}/nothing/here`)).status).toBe(404);
  });

  it("logs one line per RPC with procedure, protocol, code, duration and request id", async () => {
    await rpcError(server.grpc.tenants.getTenant({ id: crypto.randomUUID() }));
    const line = server.logs.findLast((l) => l.msg === "rpc" && l.procedure === "tenancy.v1.TenantService/GetTenant");
    expect(line).toMatchObject({ protocol: "grpc", code: "NotFound" });
    expect(typeof line?.durationMs).toBe("number");
    expect(String(line?.requestId)).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("an independent gRPC client (@grpc/grpc-js with proto-loader)", () => {
  const definition = protoLoader.loadSync(["tenancy/v1/tenant.proto", "tenancy/v1/membership.proto"], {
    includeDirs: [path.resolve("proto")],
    longs: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    tenancy: { v1: Record<string, grpc.ServiceClientConstructor> };
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const call = (client: grpc.Client, method: string, request: unknown): Promise<any> =>
    new Promise((resolve, reject) =>
      (client as unknown as Record<string, Function>)[method]!(request, (error: grpc.ServiceError | null, response: unknown) =>
        error ? reject(error) : resolve(response),
      ),
    );

  it("creates, reads and lists through grpc-js, and sees the same error codes and details", async () => {
    const target = `127.0.0.1:${server.port}`;
    const tenants = new pkg.tenancy.v1.TenantService!(target, grpc.credentials.createInsecure());
    const memberships = new pkg.tenancy.v1.MembershipService!(target, grpc.credentials.createInsecure());
    try {
      const t = tag();
      const created = await call(tenants, "CreateTenant", {
        tenant: { name: `GrpcJs ${t}`, domain: `${t}.grpcjs.example`, params: { fields: { plan: { stringValue: "pro" } } } },
      });
      expect(created.name).toBe(`GrpcJs ${t}`);
      expect(created.params.fields.plan.stringValue).toBe("pro");
      const viaConnect = await server.connect.tenants.getTenant({ id: created.id });
      expect(viaConnect.params).toEqual({ plan: "pro" });

      const looked = await call(tenants, "LookupTenant", { domain: `${t.toUpperCase()}.GRPCJS.example` });
      expect(looked.id).toBe(created.id);

      const membership = await call(memberships, "CreateMembership", { membership: { tenantId: created.id, userId: crypto.randomUUID() } });
      const listed = await call(memberships, "ListMemberships", { tenantId: created.id });
      expect(listed.memberships.map((m: { id: string }) => m.id)).toEqual([membership.id]);
      expect(listed.totalSize).toBe(1);

      const error = await call(tenants, "GetTenant", { id: crypto.randomUUID() }).catch((e: grpc.ServiceError) => e);
      expect(error.code).toBe(grpc.status.NOT_FOUND);
      expect(error.metadata.get("grpc-status-details-bin")).toHaveLength(1);
    } finally {
      tenants.close();
      memberships.close();
    }
  });
});

describe("error messages that quote client input", () => {
  it("survive input cut inside a surrogate pair, over gRPC and Connect", async () => {
    // 63 ASCII characters and an emoji: the quoted 64 code units end in half a pair.
    const id = `${"x".repeat(63)}😀`;
    for (const client of [server.grpc, server.connect]) {
      const error = await rpcError(client.tenants.getTenant({ id }));
      expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["id"] });
    }
  });
});
