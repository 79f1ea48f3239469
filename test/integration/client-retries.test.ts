/**
 * createTenancyClient's deadline, retries, request_id and bearer token,
 * against a scripted TenantService on a real port (the real service does not
 * fail on demand). What the real service answers is in
 * test/integration/client-package.test.ts and tenant-directory.test.ts.
 */
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTenancyClient, type TenancyClientOptions } from "../../clients/node/src/index.js";
import { TenantSchema, TenantService } from "../../gen/tenancy/v1/tenant_pb.js";

type Action = "ok" | "unavailable" | "drop" | "hang";

interface Seen {
  method: string;
  requestId?: string;
  authorization: string | null;
  timeout: string | null;
}

let script: Action[] = [];
let seen: Seen[] = [];
/** The raw request being handled, so that a handler can cut its connection. */
let raw: http.IncomingMessage | http2.Http2ServerRequest | undefined;

function next(method: string, ctx: HandlerContext, requestId?: string): Promise<void> | void {
  seen.push({
    method,
    ...(requestId !== undefined ? { requestId } : {}),
    authorization: ctx.requestHeader.get("authorization"),
    timeout: ctx.requestHeader.get("grpc-timeout") ?? ctx.requestHeader.get("connect-timeout-ms"),
  });
  const action = script.shift() ?? "ok";
  if (action === "unavailable") throw new ConnectError("database unreachable", Code.Unavailable);
  if (action === "drop") {
    // The answer is lost after the work was done: the case request_id is for.
    if (raw && "stream" in raw) raw.stream.session?.destroy();
    else raw?.socket.destroy();
    return new Promise(() => {});
  }
  if (action === "hang") return new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
  ctx.responseHeader.set("tenancy-event-sequence", String(seen.length));
}

const handler = connectNodeAdapter({
  routes: (router) =>
    router.service(TenantService, {
      async getTenant(req, ctx) {
        if (req.id === "hang") return new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
        await next("GetTenant", ctx);
        return create(TenantSchema, { id: req.id, name: "Acme" });
      },
      async listTenants(_req, ctx) {
        await next("ListTenants", ctx);
        return {};
      },
      async createTenant(req, ctx) {
        await next("CreateTenant", ctx, req.requestId);
        return create(TenantSchema, { name: req.tenant?.name ?? "", domain: req.tenant?.domain ?? "", id: "created" });
      },
      async updateTenant(req, ctx) {
        await next("UpdateTenant", ctx);
        return create(TenantSchema, req.tenant);
      },
    }),
});
const serve = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
  raw = req;
  handler(req as never, res as never);
};
const h2 = http2.createServer(serve);
const sessions = new Set<http2.ServerHttp2Session>();
h2.on("session", (session) => {
  sessions.add(session);
  session.on("close", () => sessions.delete(session));
});
const h1 = http.createServer(serve);
let h2Url = "";
let h1Url = "";

beforeAll(async () => {
  await new Promise<void>((resolve) => h2.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => h1.listen(0, "127.0.0.1", resolve));
  h2Url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
  h1Url = `http://127.0.0.1:${(h1.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const session of sessions) session.destroy();
  await new Promise((resolve) => h2.close(resolve));
  h1.closeAllConnections();
  await new Promise((resolve) => h1.close(resolve));
});
beforeEach(() => {
  script = [];
  seen = [];
});

const protocols: Array<[string, () => TenancyClientOptions]> = [
  ["grpc", () => ({ baseUrl: h2Url, protocol: "grpc" })],
  ["connect (HTTP/1.1, JSON)", () => ({ baseUrl: h1Url, protocol: "connect", useBinaryFormat: false })],
  ["grpc-web (HTTP/1.1)", () => ({ baseUrl: h1Url, protocol: "grpc-web" })],
];

describe.each(protocols)("createTenancyClient over %s", (_name, options) => {
  const fast = { initialBackoffMs: 5, maxBackoffMs: 20 };

  it("retries a read that met UNAVAILABLE, with backoff, and tells the server the time left", async () => {
    const client = createTenancyClient({ ...options(), retry: fast, timeoutMs: 5_000 });
    script = ["unavailable", "unavailable", "ok"];
    const tenant = await client.tenants.getTenant({ id: "a" });
    expect(tenant.name).toBe("Acme");
    expect(seen.map((s) => s.method)).toEqual(["GetTenant", "GetTenant", "GetTenant"]);
    const timeouts = seen.map((s) => Number(/^\d+/.exec(s.timeout ?? "")?.[0]));
    expect(timeouts[0]).toBe(5_000);
    expect(timeouts[2]).toBeLessThan(timeouts[0]!);
  });

  it("gives up after maxAttempts with the last error", async () => {
    const client = createTenancyClient({ ...options(), retry: { ...fast, maxAttempts: 3 } });
    script = ["unavailable", "unavailable", "unavailable", "ok"];
    await expect(client.tenants.listTenants({})).rejects.toMatchObject({ code: Code.Unavailable });
    expect(seen).toHaveLength(3);
  });

  it("retries a create with one request_id it generated for the logical call, also after a lost answer", async () => {
    const client = createTenancyClient({ ...options(), retry: fast });
    script = ["unavailable", "drop", "ok"];
    const request = { tenant: { name: "Acme", domain: "acme.example" } };
    const tenant = await client.tenants.createTenant(request);
    expect(tenant.id).toBe("created");
    expect(seen).toHaveLength(3);
    const ids = new Set(seen.map((s) => s.requestId));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // The caller's object is not changed; a second logical call gets another id.
    expect(request).toEqual({ tenant: { name: "Acme", domain: "acme.example" } });
    await client.tenants.createTenant(request);
    expect(seen[3]!.requestId).not.toBe(seen[0]!.requestId);
    // A request_id the caller chose is kept.
    await client.tenants.createTenant({ ...request, requestId: "0b0c7d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5" });
    expect(seen[4]!.requestId).toBe("0b0c7d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5");
  });

  it("never retries an update; creates without a request_id are not retried when told so, nor when retries are off", async () => {
    const client = createTenancyClient({ ...options(), retry: fast });
    script = ["unavailable", "ok"];
    await expect(client.tenants.updateTenant({ tenant: { id: "a" } })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(seen).toHaveLength(1);
    const noCreateRetries = createTenancyClient({ ...options(), retry: { ...fast, creates: false } });
    script = ["unavailable", "ok"];
    await expect(noCreateRetries.tenants.createTenant({ tenant: { name: "x", domain: "x.example" } })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(seen).toHaveLength(2);
    expect(seen[1]!.requestId).toBe("");
    // A request_id the caller set makes the create safe to retry again.
    script = ["unavailable", "ok"];
    await noCreateRetries.tenants.createTenant({ tenant: { name: "x", domain: "x.example" }, requestId: "0b0c7d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5" });
    expect(seen.slice(2).map((s) => s.requestId)).toEqual(["0b0c7d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5", "0b0c7d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5"]);
    seen = [];
    const noRetry = createTenancyClient({ ...options(), retry: false });
    script = ["unavailable"];
    await expect(noRetry.tenants.createTenant({ tenant: { name: "x", domain: "x.example" } })).rejects.toMatchObject({ code: Code.Unavailable });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.requestId).toBe("");
  });

  it("ends a call at its default deadline, retries included", async () => {
    const client = createTenancyClient({ ...options(), timeoutMs: 300, retry: { ...fast, maxAttempts: 100 } });
    script = Array.from({ length: 100 }, () => "unavailable");
    script.push("hang");
    const error = await client.tenants.getTenant({ id: "a" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect([Code.DeadlineExceeded, Code.Unavailable]).toContain((error as ConnectError).code);
    // 100 attempts with their backoff take far longer than the deadline.
    expect(seen.length).toBeLessThan(100);
    // A call may set its own deadline.
    await expect(client.tenants.getTenant({ id: "hang" }, { timeoutMs: 50 })).rejects.toMatchObject({ code: Code.DeadlineExceeded });
  });

  it("sends the bearer token, static or asked for before every attempt", async () => {
    const fixed = createTenancyClient({ ...options(), token: "static-token" });
    await fixed.tenants.getTenant({ id: "a" });
    expect(seen[0]!.authorization).toBe("Bearer static-token");
    let issued = 0;
    const refreshing = createTenancyClient({ ...options(), retry: fast, token: "ignored", getToken: async () => `token-${++issued}` });
    script = ["unavailable", "ok"];
    await refreshing.tenants.getTenant({ id: "a" });
    expect(seen.slice(1).map((s) => s.authorization)).toEqual(["Bearer token-1", "Bearer token-2"]);
    const anonymous = createTenancyClient(options());
    await anonymous.tenants.getTenant({ id: "a" });
    expect(seen.at(-1)!.authorization).toBeNull();
  });

  it("remembers the highest tenancy-event-sequence of its responses", async () => {
    const client = createTenancyClient(options());
    expect(client.lastEventSequence).toBe(0n);
    await client.tenants.updateTenant({ tenant: { id: "a" } });
    await client.tenants.updateTenant({ tenant: { id: "a" } });
    expect(client.lastEventSequence).toBe(2n);
  });
});
