import http2 from "node:http2";
import { once } from "node:events";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  GetTenantRequestSchema,
  ListTenantsRequestSchema,
  ListTenantsResponseSchema,
  TenantSchema,
} from "../../gen/tenancy/v1/tenant_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { WatchEventsRequestSchema, WatchEventsResponseSchema, type Event } from "../../gen/tenancy/v1/event_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * Unary and server-streaming gRPC with binary protobuf is served by
 * src/rpc/grpc-fast-path.ts unless GRPC_FAST_PATH=off. Here two servers share one database, one with
 * the fast path and one without, and get the same calls: their answers
 * must be the same, but for the documented difference (the fast path
 * answers errors trailers-only, Connect with headers then trailers, both
 * valid gRPC; that difference also shows which transport answered).
 */
let fast: TestServer;
let plain: TestServer;
const sessions = new Map<TestServer, http2.ClientHttp2Session>();
beforeAll(async () => {
  fast = await startTestServer({ grpcFastPath: true });
  plain = await startTestServer({ grpcFastPath: false, databaseUrl: fast.databaseUrl });
  for (const server of [fast, plain]) sessions.set(server, http2.connect(server.baseUrl));
});
afterAll(async () => {
  for (const session of sessions.values()) session.close();
  await plain?.close();
  await fast?.close();
});

interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
}

function call(server: TestServer, path: string, body: Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = sessions.get(server)!.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
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

/** The same call to both servers. */
const both = (path: string, body: Buffer, headers: Record<string, string> = {}) =>
  Promise.all([call(fast, path, body, headers), call(plain, path, body, headers)]);

function frame(message: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** The one message of an answer, decompressed when its frame says so. */
function messageOf(a: Answer): Buffer {
  return messagesOf(a)[0]!;
}

/** Every message of an answer (a stream's), each decompressed when its frame says so. */
function messagesOf(a: Answer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < a.body.length; ) {
    const length = a.body.readUInt32BE(at + 1);
    const payload = a.body.subarray(at + 5, at + 5 + length);
    out.push(a.body[at] === 1 ? gunzipSync(payload) : payload);
    at += 5 + length;
  }
  return out;
}

/** The events of a WatchEvents answer, and whether each came compressed. */
function eventsOf(a: Answer): Array<{ event: Event; compressed: boolean }> {
  const out: Array<{ event: Event; compressed: boolean }> = [];
  let at = 0;
  for (const bytes of messagesOf(a)) {
    const compressed = a.body[at] === 1;
    at += 5 + a.body.readUInt32BE(at + 1);
    const message = fromBinary(WatchEventsResponseSchema, bytes);
    if (message.kind.case === "event") out.push({ event: message.kind.value, compressed });
  }
  return out;
}

const getTenant = (id: string) => toBinary(GetTenantRequestSchema, create(GetTenantRequestSchema, { id }));
const status = (a: Answer) => String(a.trailers["grpc-status"] ?? a.headers["grpc-status"]);
const trailersOnly = (a: Answer) => a.headers["grpc-status"] !== undefined;

function errorReason(a: Answer): string | undefined {
  const bin = String(a.trailers["grpc-status-details-bin"] ?? a.headers["grpc-status-details-bin"] ?? "");
  const decoded = fromBinary(StatusSchema, Buffer.from(bin, "base64"));
  const info = decoded.details.find((d) => d.typeUrl.endsWith("google.rpc.ErrorInfo"));
  return info ? fromBinary(ErrorInfoSchema, info.value).reason : undefined;
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the condition");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("the gRPC fast path and Connect answer alike", () => {
  it("a read: the same tenant, status and headers, plain or gzip-compressed", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const created = await fast.grpc.tenants.createTenant({ tenant: { name: `Fast ${tag}`, domain: `${tag}.fast.example`, params: { a: 1 } } });
    for (const [body, headers] of [
      [frame(getTenant(created.id)), {}],
      [frame(gzipSync(getTenant(created.id)), true), { "grpc-encoding": "gzip" }],
    ] as const) {
      const answers = await both("/tenancy.v1.TenantService/GetTenant", body, { ...headers, "x-request-id": `r-${tag}` });
      for (const answer of answers) {
        expect(status(answer)).toBe("0");
        expect(answer.headers["content-type"]).toBe("application/grpc+proto");
        expect(answer.headers["x-request-id"]).toBe(`r-${tag}`);
        expect(fromBinary(TenantSchema, messageOf(answer))).toEqual(created);
      }
      expect(answers[0].headers["grpc-encoding"]).toBe(answers[1].headers["grpc-encoding"]);
    }
  });

  it("an error: the same status, details and request id (trailers-only on the fast path)", async () => {
    const missing = "6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11";
    const [f, p] = await both("/tenancy.v1.TenantService/GetTenant", frame(getTenant(missing)));
    expect([trailersOnly(f), trailersOnly(p)]).toEqual([true, false]);
    expect([status(f), status(p)]).toEqual([String(Code.NotFound), String(Code.NotFound)]);
    expect([errorReason(f), errorReason(p)]).toEqual(["TENANT_NOT_FOUND", "TENANT_NOT_FOUND"]);
    // With the status: in the trailers, which are the headers of a trailers-only answer.
    expect(f.headers["x-request-id"]).toBeTruthy();
    expect(p.trailers["x-request-id"]).toBeTruthy();
  });

  it("a large answer to a client that accepts gzip is compressed, by both", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    for (let i = 0; i < 12; i++) {
      await fast.grpc.tenants.createTenant({ tenant: { name: `Big ${tag} ${i}`, domain: `${tag}-${i}.big.example`, params: { text: "y".repeat(200) } } });
    }
    const list = frame(toBinary(ListTenantsRequestSchema, create(ListTenantsRequestSchema, { filter: `name:"Big ${tag}"`, orderBy: "name" })));
    const [f, p] = await both("/tenancy.v1.TenantService/ListTenants", list, { "grpc-accept-encoding": "identity,deflate,gzip" });
    for (const answer of [f, p]) {
      expect(answer.headers["grpc-encoding"]).toBe("gzip");
      expect(answer.body[0]).toBe(1); // the frame is compressed
      expect(fromBinary(ListTenantsResponseSchema, messageOf(answer)).tenants).toHaveLength(12);
    }
    expect(messageOf(f)).toEqual(messageOf(p));
    // Without grpc-accept-encoding, nothing is compressed.
    const [g, q] = await both("/tenancy.v1.TenantService/ListTenants", list);
    expect([g.headers["grpc-encoding"], q.headers["grpc-encoding"], g.body[0], q.body[0]]).toEqual([undefined, undefined, 0, 0]);
  });

  it("malformed calls: the same codes (INVALID_ARGUMENT for bytes that are not a message)", async () => {
    const path = "/tenancy.v1.TenantService/GetTenant";
    const one = getTenant("6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11");
    const huge = Buffer.alloc(5);
    huge.writeUInt32BE(64 * 1024 * 1024, 1);
    const cases: Array<[Buffer, Record<string, string>, Code]> = [
      [Buffer.alloc(0), {}, Code.Unimplemented], // no message
      [Buffer.concat([frame(one), frame(one)]), {}, Code.Unimplemented], // two messages
      [frame(one).subarray(0, 8), {}, Code.InvalidArgument], // cut short
      [frame(one, true), {}, Code.InvalidArgument], // compressed, no grpc-encoding
      [frame(Buffer.from("not gzip"), true), { "grpc-encoding": "gzip" }, Code.InvalidArgument],
      [frame(Buffer.from([0xff, 0xff, 0xff])), {}, Code.InvalidArgument], // not protobuf
      [frame(one), { "grpc-timeout": "soon" }, Code.InvalidArgument],
      [frame(one), { "grpc-encoding": "zstd" }, Code.Unimplemented],
      [huge, {}, Code.ResourceExhausted],
    ];
    for (const [body, headers, code] of cases) {
      const answers = await both(path, body, headers);
      expect(answers.map(status)).toEqual([String(code), String(code)]);
    }
  });

  it("an oversized message: answered before it is read, and the stream ends while the client is still sending", async () => {
    for (const server of [fast, plain]) {
      const stream = sessions.get(server)!.request({ ":method": "POST", ":path": "/tenancy.v1.TenantService/CreateTenant", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => {});
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      stream.on("response", (h) => (headers = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.resume();
      const body = Buffer.alloc(2 * 1024 * 1024 + 5);
      body.writeUInt32BE(2 * 1024 * 1024, 1);
      stream.write(body); // and never end: the server ends the stream
      await once(stream, "close");
      expect(trailers["grpc-status"] ?? headers["grpc-status"]).toBe(String(Code.ResourceExhausted));
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    }
    for (const server of [fast, plain]) {
      const refused = server.logs.filter((l) => l.msg === "rpc" && l.procedure === "tenancy.v1.TenantService/CreateTenant" && l.code === "ResourceExhausted");
      expect(refused).toHaveLength(1);
    }
  });

  it("a watch (server streaming): the same events, then the status its deadline gives, plain or gzip-compressed", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const before = (await fast.grpc.events.listEvents({ pageSize: 1 })).latestSequence;
    // Small events, and one larger than the 1 KiB below which nothing is compressed.
    const small = await fast.grpc.tenants.createTenant({ tenant: { name: `Watch ${tag}`, domain: `${tag}.watch-fast.example` } });
    const large = await fast.grpc.tenants.createTenant({ tenant: { name: `Watch big ${tag}`, domain: `${tag}-big.watch-fast.example`, params: { text: "z".repeat(2_000) } } });
    const watch = frame(toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { afterSequence: before })));
    const path = "/tenancy.v1.EventService/WatchEvents";
    const lives: string[] = [];
    for (const accept of [{}, { "grpc-accept-encoding": "identity,deflate,gzip" }] as Array<Record<string, string>>) {
      // The deadline ends both streams, after the replay and a live event.
      const answers = both(path, watch, { ...accept, "grpc-timeout": "1500m", "x-request-id": `w-${tag}` });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const live = await fast.grpc.tenants.createTenant({ tenant: { name: `Watch live ${tag} ${Object.keys(accept).length}`, domain: `${tag}-${Object.keys(accept).length}.live.example` } });
      lives.push(live.id);
      const [f, p] = await answers;
      expect([status(f), status(p)]).toEqual([String(Code.DeadlineExceeded), String(Code.DeadlineExceeded)]);
      for (const answer of [f, p]) {
        expect(status(answer)).toBe(String(Code.DeadlineExceeded));
        expect(trailersOnly(answer)).toBe(false);
        expect(answer.headers["content-type"]).toBe("application/grpc+proto");
        expect(answer.headers["x-request-id"]).toBe(`w-${tag}`);
        const events = eventsOf(answer);
        expect(events.map((e) => e.event.tenantId)).toEqual([small.id, large.id, ...lives]);
        expect(events.map((e) => e.compressed)).toEqual([false, "grpc-accept-encoding" in accept, ...lives.map(() => false)]);
      }
      expect(f.headers["grpc-encoding"]).toBe(p.headers["grpc-encoding"]);
      expect(eventsOf(f).map((e) => e.event)).toEqual(eventsOf(p).map((e) => e.event));
    }
  });

  it("a watch refused before its first message: the same status and reason", async () => {
    const refused = frame(toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { types: ["tenant.gone"] })));
    const [f, p] = await both("/tenancy.v1.EventService/WatchEvents", refused);
    expect([status(f), status(p)]).toEqual([String(Code.InvalidArgument), String(Code.InvalidArgument)]);
    // Trailers-only on the fast path (the documented difference), which shows it served the watch.
    expect([trailersOnly(f), trailersOnly(p)]).toEqual([true, false]);
    expect(messagesOf(f)).toEqual([]);
    expect(messagesOf(p)).toEqual([]);
    const [g, q] = await both("/tenancy.v1.EventService/WatchEvents", frame(Buffer.from([0xff, 0xff, 0xff])));
    expect([status(g), status(q)]).toEqual([String(Code.InvalidArgument), String(Code.InvalidArgument)]);
  });

  it("a watch whose client goes away ends on the server (its subscription is dropped)", async () => {
    for (const server of [fast, plain]) {
      const before = server.eventHub.watchers;
      const stream = sessions.get(server)!.request({ ":method": "POST", ":path": "/tenancy.v1.EventService/WatchEvents", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => {});
      stream.end(frame(toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { startNow: true }))));
      await once(stream, "response");
      await waitFor(() => server.eventHub.watchers === before + 1);
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor(() => server.eventHub.watchers === before);
    }
  });

  it("survives a client that cancels while its call runs", async () => {
    for (const server of [fast, plain]) {
      const stream = sessions.get(server)!.request({ ":method": "POST", ":path": "/tenancy.v1.TenantService/ListTenants", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => {});
      stream.end(frame(new Uint8Array(0)));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      const tag = Math.random().toString(36).slice(2, 8);
      const created = await server.grpc.tenants.createTenant({ tenant: { name: `After ${tag}`, domain: `${tag}.after.example` } });
      expect((await server.grpc.tenants.getTenant({ id: created.id })).id).toBe(created.id);
    }
  });
});
