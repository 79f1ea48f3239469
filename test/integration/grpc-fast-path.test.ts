import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { GetTenantRequestSchema, TenantSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * Unary gRPC with binary protobuf and no compression is served by
 * src/rpc/grpc-fast-path.ts; anything else by the Connect adapter. A gzip
 * request takes the Connect path, so comparing the two shows that they
 * answer alike. (The fast path answers errors "trailers-only", Connect with
 * headers then trailers: both are valid gRPC, and it tells them apart here.)
 */
let server: TestServer;
let session: http2.ClientHttp2Session;
beforeAll(async () => {
  server = await startTestServer();
  session = http2.connect(server.baseUrl);
});
afterAll(async () => {
  session?.close();
  await server?.close();
});

interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function call(path: string, body: Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    const answer: Answer = { headers: {}, trailers: {}, body: Buffer.alloc(0) };
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (answer.headers = h));
    stream.on("trailers", (t) => (answer.trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => resolve({ ...answer, body: Buffer.concat(chunks) }));
    stream.on("error", reject);
    stream.end(body);
  });
}

function frame(message: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

const plain = (message: Uint8Array) => frame(message);
const gzip = (message: Uint8Array) => frame(gzipSync(message), true);
const getTenant = (id: string) => toBinary(GetTenantRequestSchema, create(GetTenantRequestSchema, { id }));
const status = (a: Answer) => String(a.trailers["grpc-status"] ?? a.headers["grpc-status"]);
const trailersOnly = (a: Answer) => a.headers["grpc-status"] !== undefined;

function errorReason(a: Answer): string | undefined {
  const bin = String(a.trailers["grpc-status-details-bin"] ?? a.headers["grpc-status-details-bin"] ?? "");
  const decoded = fromBinary(StatusSchema, Buffer.from(bin, "base64"));
  const info = decoded.details.find((d) => d.typeUrl.endsWith("google.rpc.ErrorInfo"));
  return info ? fromBinary(ErrorInfoSchema, info.value).reason : undefined;
}

describe("the gRPC fast path", () => {
  it("answers like the Connect path: the same tenant, status and headers", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const created = await server.grpc.tenants.createTenant({ tenant: { name: `Fast ${tag}`, domain: `${tag}.fast.example`, params: { a: 1 } } });
    const fast = await call("/tenancy.v1.TenantService/GetTenant", plain(getTenant(created.id)), { "x-request-id": `fast-${tag}` });
    const slow = await call("/tenancy.v1.TenantService/GetTenant", gzip(getTenant(created.id)), { "grpc-encoding": "gzip", "x-request-id": `slow-${tag}` });
    expect([status(fast), status(slow)]).toEqual(["0", "0"]);
    expect(fast.headers["content-type"]).toBe(slow.headers["content-type"]);
    expect(fast.headers["x-request-id"]).toBe(`fast-${tag}`);
    expect(slow.headers["x-request-id"]).toBe(`slow-${tag}`);
    expect(slow.headers["grpc-encoding"]).toBe("gzip"); // Connect answered that one
    expect(fast.headers["grpc-encoding"]).toBeUndefined();
    expect(fast.body[0]).toBe(0);
    expect(fromBinary(TenantSchema, fast.body.subarray(5))).toEqual(created);
  });

  it("answers errors like the Connect path, with their details and the request id", async () => {
    const missing = "6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11";
    const fast = await call("/tenancy.v1.TenantService/GetTenant", plain(getTenant(missing)));
    const slow = await call("/tenancy.v1.TenantService/GetTenant", gzip(getTenant(missing)), { "grpc-encoding": "gzip" });
    expect(trailersOnly(fast)).toBe(true);
    expect(trailersOnly(slow)).toBe(false);
    expect([status(fast), status(slow)]).toEqual([String(Code.NotFound), String(Code.NotFound)]);
    expect([errorReason(fast), errorReason(slow)]).toEqual(["TENANT_NOT_FOUND", "TENANT_NOT_FOUND"]);
    expect(fast.headers["x-request-id"]).toBeTruthy();
  });

  it("refuses malformed calls: INVALID_ARGUMENT for bytes that are not a message (Connect's adapter says INTERNAL)", async () => {
    const path = "/tenancy.v1.TenantService/GetTenant";
    const one = getTenant("6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11");
    expect(status(await call(path, Buffer.alloc(0)))).toBe(String(Code.Unimplemented)); // no message
    expect(status(await call(path, Buffer.concat([plain(one), plain(one)])))).toBe(String(Code.Unimplemented)); // two messages
    expect(status(await call(path, plain(one).subarray(0, 8)))).toBe(String(Code.InvalidArgument)); // cut short
    expect(status(await call(path, frame(one, true)))).toBe(String(Code.InvalidArgument)); // compressed, no grpc-encoding
    expect(status(await call(path, plain(Buffer.from([0xff, 0xff, 0xff]))))).toBe(String(Code.InvalidArgument)); // not protobuf
    const huge = Buffer.alloc(5);
    huge.writeUInt32BE(64 * 1024 * 1024, 1);
    expect(status(await call(path, huge))).toBe(String(Code.ResourceExhausted));
  });

  it("survives a client that cancels while its call runs", async () => {
    const stream = session.request({ ":method": "POST", ":path": "/tenancy.v1.TenantService/ListTenants", "content-type": "application/grpc", te: "trailers" });
    stream.on("error", () => {});
    stream.end(plain(new Uint8Array(0)));
    stream.close(http2.constants.NGHTTP2_CANCEL);
    const tag = Math.random().toString(36).slice(2, 8);
    const created = await server.grpc.tenants.createTenant({ tenant: { name: `After ${tag}`, domain: `${tag}.after.example` } });
    expect((await server.grpc.tenants.getTenant({ id: created.id })).id).toBe(created.id);
  });
});
