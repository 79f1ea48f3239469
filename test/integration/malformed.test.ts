import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { gzipSync } from "node:zlib";
import { frame, send, unary, type Protocol, type RawAnswer } from "../support/any-protocol.js";
import { createTenantBytes } from "../support/raw-rpc.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

const getTenant = "/tenancy.v1.TenantService/GetTenant";
const createTenant = "/tenancy.v1.TenantService/CreateTenant";
const noStackTrace = /\s+at\s+\S+:\d+/;

/** Every protocol, over each HTTP version it works on. */
const wires: Array<[Protocol, "1.1" | "2"]> = [
  ["grpc", "2"],
  ["grpc-web", "1.1"],
  ["grpc-web", "2"],
  ["connect", "1.1"],
  ["connect", "2"],
];
const enveloped = wires.filter(([protocol]) => protocol !== "connect");

/** What a client of each protocol sees: the status code, and the fields named. */
const seen = (a: RawAnswer) => ({ code: a.code === undefined ? undefined : Code[a.code], fields: a.fields });

describe("malformed requests get clean errors in their protocol's shape, and the server stays up", () => {
  it.each(enveloped)("%s over HTTP/%s: cut, short and unannounced compressed frames are INVALID_ARGUMENT", async (protocol, httpVersion) => {
    const cases = [
      frame(Buffer.from([0x0a, 0x03, 0x61]), 100), // promises more than it has
      Buffer.from([0, 0, 0]), // a frame header cut short
      frame(Buffer.from([0x0a, 0x00]), 2, 1), // compressed, without grpc-encoding
    ];
    for (const body of cases) {
      const answer = await send(server.baseUrl, { ...unary(protocol, httpVersion, getTenant, "", false), body });
      expect(seen(answer)).toEqual({ code: "InvalidArgument", fields: [] });
      expect(answer.message).not.toMatch(noStackTrace);
    }
  });

  it.each(enveloped)("%s over HTTP/%s: an oversized frame is RESOURCE_EXHAUSTED before it is read", async (protocol, httpVersion) => {
    const answer = await send(server.baseUrl, { ...unary(protocol, httpVersion, getTenant, "", false), body: frame(Buffer.alloc(16), 0x7fffffff) });
    expect(seen(answer)).toEqual({ code: "ResourceExhausted", fields: [] });
  });

  it.each(wires)("%s over HTTP/%s: a body that is not protobuf is INVALID_ARGUMENT", async (protocol, httpVersion) => {
    for (const bytes of [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]), Buffer.from([0x0a, 0x05, 0x61]), Buffer.from("{\"id\":1}")]) {
      const answer = await send(server.baseUrl, unary(protocol, httpVersion, getTenant, bytes, false));
      expect(seen(answer)).toEqual({ code: "InvalidArgument", fields: [] });
      expect(answer.message).toMatch(/not a valid tenancy\.v1\.GetTenantRequest in the protobuf binary format/);
      expect(answer.message).not.toMatch(noStackTrace);
    }
  });

  it.each(wires)("%s over HTTP/%s: JSON that is not JSON is INVALID_ARGUMENT", async (protocol, httpVersion) => {
    const answer = await send(server.baseUrl, unary(protocol, httpVersion, getTenant, "{not json", true));
    expect(seen(answer)).toEqual({ code: "InvalidArgument", fields: [] });
    expect(answer.message).toMatch(/not valid JSON/);
  });

  it.each(wires)("%s over HTTP/%s: an unknown JSON field is refused, named, and nothing is created", async (protocol, httpVersion) => {
    const tag = Math.random().toString(36).slice(2, 8);
    const body = JSON.stringify({ tenant: { name: `Typo ${tag}`, domain: `${tag}.typo.example`, plan: "pro" } });
    const answer = await send(server.baseUrl, unary(protocol, httpVersion, createTenant, body, true));
    expect(seen(answer)).toEqual({ code: "InvalidArgument", fields: ["tenant.plan"] });
    expect(answer.message).toMatch(/tenant\.plan: unknown field/);
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE name = $1`, [`Typo ${tag}`]);
    expect(rows[0].n).toBe(0);
  });

  it.each(wires)("%s over HTTP/%s: a value of the wrong type names its field", async (protocol, httpVersion) => {
    const params = await send(server.baseUrl, unary(protocol, httpVersion, createTenant, '{"tenant":{"name":"A","params":"pro"}}', true));
    expect(seen(params)).toEqual({ code: "InvalidArgument", fields: ["tenant.params"] });
    expect(params.message).toMatch(/tenant\.params: expected a JSON object, got "pro"/);
    const id = await send(server.baseUrl, unary(protocol, httpVersion, getTenant, '{"id":42}', true));
    expect(seen(id)).toEqual({ code: "InvalidArgument", fields: ["id"] });
    const several = await send(server.baseUrl, unary(protocol, httpVersion, createTenant, '{"tenant":{"state":"NOPE","createTime":"yesterday"},"extra":1}', true));
    expect(seen(several)).toEqual({ code: "InvalidArgument", fields: ["tenant.state", "tenant.create_time", "extra"] });
  });

  it("gRPC: an unknown method is UNIMPLEMENTED, in gRPC's shape", async () => {
    for (const path of ["/tenancy.v1.TenantService/Nope", "/tenancy.v1.Nothing/Get"]) {
      const answer = await send(server.baseUrl, unary("grpc", "2", path, "", false));
      expect(answer.httpStatus).toBe(200);
      expect(seen(answer)).toEqual({ code: "Unimplemented", fields: [] });
    }
    const method = await send(server.baseUrl, unary("grpc", "2", "/tenancy.v1.TenantService/Nope", "", false));
    expect(method.message).toBe("unknown method Nope of service tenancy.v1.TenantService");
    const service = await send(server.baseUrl, unary("grpc", "2", "/tenancy.v1.Nothing/Get", "", false));
    expect(service.message).toMatch(/^unknown service tenancy\.v1\.Nothing: this server has tenancy\.v1\.TenantService, /);
  });

  it.each(wires)("%s over HTTP/%s: an unknown method is UNIMPLEMENTED", async (protocol, httpVersion) => {
    const answer = await send(server.baseUrl, unary(protocol, httpVersion, "/tenancy.v1.TenantService/Nope", "{}", protocol === "connect"));
    expect(seen(answer)).toEqual({ code: "Unimplemented", fields: [] });
    if (protocol === "connect") {
      expect(answer.httpStatus).toBe(404);
      expect(answer.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(answer.body.toString())).toEqual({ code: "unimplemented", message: "unknown method Nope of service tenancy.v1.TenantService" });
    }
  });

  it.each([["1.1"], ["2"]] as const)("over HTTP/%s: a wrong or missing content type is 415, saying which are accepted", async (httpVersion) => {
    const cases: Array<Record<string, string>> = [{ "content-type": "text/plain" }, {}, { "content-type": "application/proto; charset=utf-8" }];
    for (const headers of cases) {
      const answer = await send(server.baseUrl, { path: getTenant, http: httpVersion, headers, body: Buffer.from("hello") });
      expect(answer.httpStatus).toBe(415);
      expect(answer.message).toMatch(/^(unsupported content type "[^"]+"|missing content type): this method takes application\/grpc .*application\/grpc-web .*application\/proto or application\/json/);
    }
  });

  it("gRPC over HTTP/1.1 is refused, saying that gRPC needs HTTP/2 and what works over HTTP/1.1", async () => {
    const answer = await send(server.baseUrl, unary("grpc", "1.1", getTenant, "", false));
    expect(answer.httpStatus).toBe(505);
    expect(answer.message).toMatch(/^gRPC needs HTTP\/2.*gRPC-Web or the Connect protocol, which work over HTTP\/1\.1/);
  });

  it.each(wires)("%s over HTTP/%s: a body over the size limit is RESOURCE_EXHAUSTED", async (protocol, httpVersion) => {
    const body = JSON.stringify({ tenant: { name: "big", domain: "big.example", params: { blob: "x".repeat(2 * 1024 * 1024) } } });
    const answer = await send(server.baseUrl, unary(protocol, httpVersion, createTenant, body, true));
    expect(seen(answer)).toEqual({ code: "ResourceExhausted", fields: [] });
  });

  it.each(wires)("%s over HTTP/%s: a binary params key __proto__ (which protobuf-es would drop) is refused, naming it", async (protocol, httpVersion) => {
    const tag = Math.random().toString(36).slice(2, 8);
    const params = { a: JSON.parse('{"__proto__": {"polluted": true}}') };
    const bytes = Buffer.from(createTenantBytes({ name: `Proto ${tag}`, domain: `${tag}.proto.example`, params }));
    const answer = await send(server.baseUrl, unary(protocol, httpVersion, createTenant, bytes, false));
    expect(seen(answer)).toEqual({ code: "InvalidArgument", fields: ["tenant.params.a.__proto__"] });
    // Compressed too, where the fast path used to pass it to protobuf-es unchecked.
    const compressed = { ...unary(protocol, httpVersion, createTenant, gzipSync(bytes), false) };
    if (protocol === "connect") compressed.headers = { ...compressed.headers, "content-encoding": "gzip" };
    else compressed.body = frame(gzipSync(bytes), undefined, 1);
    if (protocol !== "connect") compressed.headers = { ...compressed.headers, "grpc-encoding": "gzip" };
    expect(seen(await send(server.baseUrl, compressed))).toEqual({ code: "InvalidArgument", fields: ["tenant.params.a.__proto__"] });
  });

  it.each(enveloped)("%s over HTTP/%s: a streaming method's request that is not protobuf is INVALID_ARGUMENT", async (protocol, httpVersion) => {
    const answer = await send(server.baseUrl, unary(protocol, httpVersion, "/grpc.health.v1.Health/Watch", Buffer.from([0x0a, 0x05, 0x61]), false));
    expect(seen(answer)).toEqual({ code: "InvalidArgument", fields: [] });
    expect(answer.message).toMatch(/not a valid grpc\.health\.v1\.HealthCheckRequest/);
  });

  it("still serves normal requests afterwards", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const created = await server.grpc.tenants.createTenant({ tenant: { name: `After ${tag}`, domain: `${tag}.after.example` } });
    expect((await server.connect.tenants.getTenant({ id: created.id })).id).toBe(created.id);
  });

  it("answered every refusal of a known method through the interceptors: in the access log, by protocol", () => {
    const refused = server.logs.filter((l) => l.msg === "rpc" && l.code !== "OK" && l.code !== "NotFound");
    const protocols = new Set(refused.map((l) => l.protocol));
    expect(protocols).toEqual(new Set(["grpc", "grpc-web", "connect"]));
    expect(new Set(refused.map((l) => l.code))).toEqual(new Set(["InvalidArgument", "ResourceExhausted"]));
  });
});
