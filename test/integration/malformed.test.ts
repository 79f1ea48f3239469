import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

interface RawResponse {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a fresh HTTP/2 connection, with whatever bytes we like. */
async function raw(path: string, headers: Record<string, string>, body: Buffer): Promise<RawResponse> {
  const session = http2.connect(server.baseUrl);
  session.on("error", () => {});
  try {
    return await new Promise<RawResponse>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": path, ...headers });
      let responseHeaders: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (responseHeaders = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () =>
        resolve({ status: Number(responseHeaders[":status"]), headers: responseHeaders, trailers, body: Buffer.concat(chunks) }),
      );
      stream.on("error", reject);
      stream.end(body);
    });
  } finally {
    session.close();
  }
}

function frame(payload: Buffer, declaredLength = payload.length, flags = 0): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(flags, 0);
  header.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([header, payload]);
}

function grpcStatus(res: RawResponse): number {
  return Number(res.trailers["grpc-status"] ?? res.headers["grpc-status"]);
}

const grpc = { "content-type": "application/grpc", te: "trailers" };
const path = "/tenancy.v1.TenantService/GetTenant";

describe("malformed requests get clean errors, and the server stays up", () => {
  it.each([
    ["a truncated gRPC frame", () => frame(Buffer.from([0x0a, 0x03, 0x61]), 100)],
    ["a gRPC frame header cut short", () => Buffer.from([0, 0, 0])],
    ["a compressed frame without grpc-encoding", () => frame(Buffer.from([0x0a, 0x00]), 2, 1)],
  ])("%s", async (_label, body) => {
    const res = await raw(path, grpc, body());
    expect(res.status).toBe(200);
    const status = grpcStatus(res);
    expect(status).toBe(3); // INVALID_ARGUMENT: the request is malformed
    expect(String(res.trailers["grpc-message"] ?? "")).not.toMatch(/\s+at\s+\S+:\d+/); // no stack trace
  });

  it("refuses an oversized gRPC frame with RESOURCE_EXHAUSTED before reading it", async () => {
    const res = await raw(path, grpc, frame(Buffer.alloc(16), 0x7fffffff));
    expect(grpcStatus(res)).toBe(8);
  });

  it("answers invalid protobuf bytes with INVALID_ARGUMENT, without a leak of internals", async () => {
    const res = await raw(path, grpc, frame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])));
    expect(grpcStatus(res)).toBe(3);
    expect(String(res.trailers["grpc-message"] ?? "")).not.toMatch(/SELECT|INSERT|\s+at\s+\S+:\d+/);
  });

  it("refuses a wrong content type with 415", async () => {
    const res = await raw(path, { "content-type": "text/plain" }, Buffer.from("hello"));
    expect(res.status).toBe(415);
  });

  it("refuses invalid JSON on the Connect protocol with invalid_argument", async () => {
    const res = await raw(path, { "content-type": "application/json" }, Buffer.from("{not json"));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString()).code).toBe("invalid_argument");
    const wrongType = await raw(path, { "content-type": "application/json" }, Buffer.from('{"id": 42}'));
    expect(JSON.parse(wrongType.body.toString()).code).toBe("invalid_argument");
  });

  it("refuses a Connect request body over the size limit with resource_exhausted", async () => {
    const body = Buffer.from(JSON.stringify({ tenant: { name: "big", domain: "big.example", params: { blob: "x".repeat(2 * 1024 * 1024) } } }));
    const res = await raw("/tenancy.v1.TenantService/CreateTenant", { "content-type": "application/json" }, body);
    expect(JSON.parse(res.body.toString()).code).toBe("resource_exhausted");
  });

  it("still serves normal requests afterwards", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const created = await server.grpc.tenants.createTenant({ tenant: { name: `After ${tag}`, domain: `${tag}.after.example` } });
    expect((await server.connect.tenants.getTenant({ id: created.id })).id).toBe(created.id);
  });
});
