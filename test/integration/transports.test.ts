import http2 from "node:http2";
import { once } from "node:events";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type Interceptor } from "@connectrpc/connect";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Serving,
} from "../../gen/health/v1/health_pb.js";
import { createLogger } from "../../src/logger.js";
import { createOnePort, type OnePort } from "../../src/http/one-port.js";
import { encoderMap } from "../../src/rpc/codecs.js";
import { errorInterceptor } from "../../src/rpc/error.interceptor.js";
import { createGrpcFastPath, responseEncodingInterceptor } from "../../src/rpc/grpc-fast-path.js";
import { loggingInterceptor } from "../../src/rpc/logging.interceptor.js";
import { decodedRequestInterceptor } from "../../src/rpc/request-reader.js";
import { createRpcHandler, serviceRegistration } from "../../src/rpc/rpc-handler.js";

/**
 * The two transports of unary gRPC, the fast path and the Connect adapter,
 * around a small implementation of grpc.health.v1.Health.Check (no
 * database): it records what its context says, and its answer for the
 * service "unencodable" makes the fast path's encoder fail.
 */
interface World {
  port: OnePort;
  url: string;
  logs: Array<Record<string, unknown>>;
  /** The codes the outermost interceptor saw (as the metrics count them). */
  codes: string[];
  /** ctx.timeoutMs() as each call's implementation saw it. */
  budgets: number[];
}

async function world(fastPath: boolean): Promise<World> {
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger(
    "info",
    new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split("\n")) if (line) logs.push(JSON.parse(line));
        done();
      },
    }),
  );
  const codes: string[] = [];
  const budgets: number[] = [];
  const counting: Interceptor = (next) => async (req) => {
    try {
      const res = await next(req);
      codes.push("OK");
      return res;
    } catch (error) {
      codes.push(Code[ConnectError.from(error).code]);
      throw error;
    }
  };
  const interceptors = [counting, loggingInterceptor(logger), decodedRequestInterceptor(), errorInterceptor(logger), responseEncodingInterceptor()];
  const services = [
    serviceRegistration(Health, {
      check(req, ctx) {
        budgets.push(ctx.timeoutMs() ?? Infinity);
        return create(HealthCheckResponseSchema, { status: req.service === "unencodable" ? Serving.SERVICE_UNKNOWN : Serving.SERVING });
      },
    }),
  ];
  const common = { services, interceptors, contextValues: () => createContextValues(), readMaxBytes: 1024, log: logger };
  const rpc = createRpcHandler({ ...common, fallback: (_req, res) => res.writeHead(404).end() });
  const fast = fastPath
    ? createGrpcFastPath({
        ...common,
        encoders: encoderMap().add(HealthCheckResponseSchema, (message) => {
          if (message.status === Serving.SERVICE_UNKNOWN) throw new Error("this encoder fails");
          return toBinary(HealthCheckResponseSchema, message);
        }),
      })
    : undefined;
  const port = createOnePort({ handler: rpc, takeStream: fast?.takeStream, prefaceTimeoutMs: 5_000, idleSessionTimeoutMs: 5_000 });
  const address = await port.listen(0, "127.0.0.1");
  return { port, url: `http://127.0.0.1:${address.port}`, logs, codes, budgets };
}

function frame(message: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

interface Answer {
  status: string | undefined;
  message?: string;
}

/** A Health.Check call whose body is sent once `sendBody` resolves. */
async function check(url: string, service: string, headers: Record<string, string> = {}, sendBody: Promise<void> = Promise.resolve()): Promise<Answer> {
  const session = http2.connect(url);
  try {
    const stream = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers", ...headers });
    let head: http2.IncomingHttpHeaders = {};
    let tail: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (tail = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    await sendBody;
    stream.end(frame(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }))));
    await once(stream, "end");
    const body = Buffer.concat(chunks);
    const status = String(tail["grpc-status"] ?? head["grpc-status"]);
    if (status !== "0") return { status, message: decodeURIComponent(String(tail["grpc-message"] ?? head["grpc-message"])) };
    return { status, message: Serving[fromBinary(HealthCheckResponseSchema, body.subarray(5)).status] };
  } finally {
    session.close();
  }
}

const worlds: Record<string, World> = {};
beforeAll(async () => {
  worlds.fast = await world(true);
  worlds.connect = await world(false);
});
afterAll(async () => {
  for (const w of Object.values(worlds)) await w.port.close(1_000);
});

describe.each(["fast", "connect"])("unary gRPC through the %s transport", (name) => {
  it("answers a call", async () => {
    expect(await check(worlds[name]!.url, "")).toEqual({ status: "0", message: "SERVING" });
  });

  it("counts the deadline from the request's arrival, not from the end of its body", async () => {
    const w = worlds[name]!;
    // The body is held back, as a slow client's would be: this wait is the scenario, not a guess at timing.
    const late = new Promise<void>((resolve) => setTimeout(resolve, 300));
    expect((await check(w.url, "", { "grpc-timeout": "10S" }, late)).status).toBe("0");
    const budget = w.budgets.at(-1)!;
    expect(budget).toBeLessThanOrEqual(10_000 - 300 + 20);
    expect(budget).toBeGreaterThan(0);
  });
});

describe("a fast-path answer that fails to encode", () => {
  it("is INTERNAL for the client, logged as an internal error, and counted as INTERNAL", async () => {
    const w = worlds.fast!;
    expect(await check(w.url, "unencodable")).toEqual({ status: String(Code.Internal), message: "internal error" });
    expect(w.codes.at(-1)).toBe("Internal");
    expect(w.logs.find((l) => l.msg === "internal error")).toMatchObject({ procedure: "grpc.health.v1.Health/Check" });
    expect(w.logs.findLast((l) => l.msg === "rpc")).toMatchObject({ procedure: "grpc.health.v1.Health/Check", code: "Internal" });
  });
});
