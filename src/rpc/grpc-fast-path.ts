import http2 from "node:http2";
import { create, fromBinary, isMessage, toBinary, type BinaryReadOptions, type DescMessage, type DescService } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createServiceImplSpec,
  type ConnectRouter,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { RecordHeaders } from "./record-headers.js";
import { invalidArgument, toConnectError } from "../common/errors.js";
import { findStructProtoKey } from "./struct-keys.js";

/**
 * A lean transport for the most common call: unary gRPC over HTTP/2 with
 * binary protobuf and no compression (what every gRPC client in another
 * backend sends). It runs the same interceptors and the same
 * implementations as the Connect adapter, applied the way Connect's
 * `invokeUnaryImplementation` applies them; what it leaves out is the
 * generic protocol machinery around them (async-iterable pipelines over the
 * request and response bodies, a web Request/Response conversion, and an
 * AbortController per call, aborted with a DOMException at its end), which costs
 * several times the work of the call itself on the hot read paths (see
 * README, "Where the time goes").
 *
 * Everything else (gRPC-Web, the Connect protocol, JSON, compression,
 * streaming methods, HTTP/1.1, other content types) goes to the Connect
 * adapter unchanged, as does any request it does not recognize.
 */
export interface GrpcFastPathOptions {
  /** The unary methods of these services are served here. */
  services: readonly DescService[];
  interceptors: Interceptor[];
  /** Called when a stream arrives, with its headers. */
  contextValues: (headers: http2.IncomingHttpHeaders) => ContextValues;
  readMaxBytes: number;
  /** As given to the Connect adapter. */
  binaryOptions?: Partial<BinaryReadOptions>;
  /**
   * Whether the response of this call is a shared, never-modified message
   * (a cache hit), whose encoding can be kept and reused.
   */
  sharedResponse?: (values: ContextValues) => boolean;
  /**
   * Hand-written encoders for some response messages (the same bytes as
   * `toBinary`, faster), used for messages without unknown fields.
   */
  encoders?: ReadonlyMap<DescMessage, (message: never) => Uint8Array>;
  /**
   * Hand-written decoders for some request messages; one answers undefined
   * for input it leaves to `fromBinary` (and its errors).
   */
  decoders?: ReadonlyMap<DescMessage, (bytes: Uint8Array) => object | undefined>;
}

export interface GrpcFastPath {
  /** Wraps the routes given to the Connect adapter, to learn the implementations it serves. */
  routes(routes: (router: ConnectRouter) => void): (router: ConnectRouter) => void;
  /** Serves this stream when it is eligible (true), from its headers alone; else leaves it (false). */
  takeStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
}

const CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);
const RESPONSE_CONTENT_TYPE = "application/grpc+proto";

/** A gRPC message frame: flag 0 (not compressed), 4-byte big-endian length, the message. */
function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

function toNodeHeaders(headers: Headers, into: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  headers.forEach((value, key) => {
    into[key] = value;
  });
  return into;
}

export function createGrpcFastPath(options: GrpcFastPathOptions): GrpcFastPath {
  const encode = (schema: DescMessage, message: object): Uint8Array => {
    const encoder = options.encoders?.get(schema);
    return encoder && (message as { $unknown?: unknown }).$unknown === undefined
      ? encoder(message as never)
      : toBinary(schema, message as never);
  };
  /** Encoded frames of shared response messages, dropped with them. */
  const encoded = new WeakMap<object, Buffer>();
  const specs = new Map<string, MethodImplSpec & { kind: "unary" }>();

  const record = (service: DescService, implementation: unknown) => {
    if (!options.services.includes(service)) return;
    const spec = createServiceImplSpec(service, implementation as never);
    for (const method of Object.values(spec.methods)) {
      if (method.kind === "unary") specs.set(`/${service.typeName}/${method.method.name}`, method);
    }
  };

  /** Whether this stream is served here, from its headers alone (before its body is read). */
  const accepts = (headers: http2.IncomingHttpHeaders): boolean => {
    if (headers[":method"] !== "POST") return false;
    const path = headers[":path"];
    if (path === undefined || !specs.has(path)) return false;
    const type = headers["content-type"];
    if (type === undefined || !CONTENT_TYPES.has(type)) return false;
    const encoding = headers["grpc-encoding"];
    return encoding === undefined || encoding === "identity";
  };

  const serve = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const path = headers[":path"]!;
    const spec = specs.get(path)!;
    const contextValues = options.contextValues(headers);
    const chunks: Buffer[] = [];
    let received = 0;
    let finished = false;
    let controller: AbortController | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const abort = (reason: unknown) => {
      controller ??= new AbortController();
      if (!controller.signal.aborted) controller.abort(reason);
    };

    const respondError = (error: ConnectError, responseHeader?: Headers, responseTrailer?: Headers) => {
      if (stream.destroyed || stream.closed) return;
      const trailer = setTrailerStatus(responseTrailer ?? new RecordHeaders().asHeaders(), error);
      // Trailers-only: the status travels with the headers.
      const out: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": RESPONSE_CONTENT_TYPE };
      if (responseHeader) toNodeHeaders(responseHeader, out);
      toNodeHeaders(trailer, out);
      stream.respond(out, { endStream: true });
    };

    const run = async () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      if (body.length === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
      // Malformed input is the client's error, so INVALID_ARGUMENT here,
      // where Connect's adapter says INTERNAL (this service treats INTERNAL
      // as a bug of its own).
      if (body.length < 5) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
      if ((body[0]! & 0b1) !== 0) {
        throw new ConnectError("protocol error: received compressed envelope, but no grpc-encoding", Code.InvalidArgument);
      }
      const length = body.readUInt32BE(1);
      if (length > options.readMaxBytes) {
        throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${options.readMaxBytes}`, Code.ResourceExhausted);
      }
      if (body.length < 5 + length) throw new ConnectError(`protocol error: promised ${length} bytes in enveloped message, got ${body.length - 5} bytes`, Code.InvalidArgument);
      if (body.length > 5 + length) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
      const bytes = body.subarray(5);
      // What the decoders below would silently drop (see struct-keys.ts).
      const protoKey = findStructProtoKey(spec.method.input, bytes);
      if (protoKey) throw toConnectError(invalidArgument(protoKey.field, protoKey.description));
      let input;
      try {
        input =
          options.decoders?.get(spec.method.input)?.(bytes) ??
          fromBinary(spec.method.input, bytes, { readUnknownFields: true, ...options.binaryOptions });
      } catch (error) {
        throw new ConnectError(`parse binary: ${error instanceof Error ? error.message : String(error)}`, Code.InvalidArgument);
      }
      const timeout = parseTimeout((headers["grpc-timeout"] as string | undefined) ?? null, Number.MAX_SAFE_INTEGER);
      if (timeout.error) throw timeout.error;
      let timeoutMs: () => number | undefined = () => undefined;
      if (timeout.timeoutMs !== undefined) {
        const at = Date.now() + timeout.timeoutMs;
        timeoutMs = () => at - Date.now();
        deadline = setTimeout(() => abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout.timeoutMs);
      }
      const responseHeader = new RecordHeaders({ "content-type": RESPONSE_CONTENT_TYPE }).asHeaders();
      const responseTrailer = new RecordHeaders({ "grpc-status": "0" }).asHeaders();
      // Created on first use; aborted only when the call is cancelled or
      // times out, never on normal completion.
      const signal = () => (controller ??= new AbortController()).signal;
      const request: UnaryRequest = {
        stream: false,
        message: input,
        method: spec.method,
        service: spec.method.parent,
        requestMethod: "POST",
        url: `http://${String(headers[":authority"] ?? "localhost")}${path}`,
        get signal() {
          return signal();
        },
        header: new RecordHeaders(headers).asHeaders(),
        contextValues,
      } as UnaryRequest;
      // What Connect's invokeUnaryImplementation does, without copying the
      // context per call (which reads, and so creates, the signal).
      const implementation = async (req: UnaryRequest): Promise<UnaryResponse> => {
        const context: HandlerContext = {
          service: req.service,
          method: req.method,
          protocolName: "grpc",
          requestMethod: req.requestMethod,
          url: req.url,
          get signal() {
            return req.signal;
          },
          timeoutMs,
          requestHeader: req.header,
          responseHeader,
          responseTrailer,
          values: req.contextValues,
        };
        const out = await (spec.impl as (message: unknown, context: HandlerContext) => Promise<unknown>)(req.message, context);
        const message = isMessage(out, spec.method.output) ? out : create(spec.method.output, out as never);
        return { stream: false, message, method: spec.method, service: spec.method.parent, header: responseHeader, trailer: responseTrailer } as UnaryResponse;
      };
      try {
        let call = implementation;
        for (let i = options.interceptors.length - 1; i >= 0; i--) call = options.interceptors[i]!(call as never) as typeof call;
        const response = await call(request);
        const output = response.message;
        if (response.header !== responseHeader) response.header.forEach((value, key) => responseHeader.set(key, value));
        if (response.trailer !== responseTrailer) response.trailer.forEach((value, key) => responseTrailer.set(key, value));
        let payload: Buffer | undefined;
        if (options.sharedResponse?.(request.contextValues)) {
          payload = encoded.get(output);
          if (!payload) encoded.set(output, (payload = frame(encode(spec.method.output, output))));
        } else {
          payload = frame(encode(spec.method.output, output));
        }
        if (stream.destroyed || stream.closed) return;
        stream.respond(toNodeHeaders(responseHeader, { ":status": 200 }), { waitForTrailers: true });
        stream.once("wantTrailers", () => stream.sendTrailers(toNodeHeaders(responseTrailer)));
        stream.end(payload);
      } catch (error) {
        const connectError =
          error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
        respondError(connectError, responseHeader, responseTrailer);
      }
    };

    stream.on("data", (chunk: Buffer) => {
      received += chunk.length;
      // One frame at most: stop buffering once a request cannot be valid.
      if (received > options.readMaxBytes + 10) {
        if (!finished) {
          finished = true;
          respondError(new ConnectError(`message is larger than configured readMaxBytes ${options.readMaxBytes}`, Code.ResourceExhausted));
          // The status went out in the headers, which a reset does not
          // overtake: stop the client sending the rest (RFC 9113 section 8.1).
          stream.close(http2.constants.NGHTTP2_NO_ERROR);
        }
        return;
      }
      chunks.push(chunk);
    });
    stream.on("end", () => {
      if (finished) return;
      run()
        .catch((error: unknown) =>
          respondError(error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, undefined, undefined, error)),
        )
        .finally(() => {
          finished = true;
          clearTimeout(deadline);
        });
    });
    stream.on("close", () => {
      clearTimeout(deadline);
      if (!finished) abort(new ConnectError("the call was cancelled", Code.Canceled));
    });
    stream.on("error", () => {});
  };

  return {
    routes(routes) {
      return (router) => {
        const recording = new Proxy(router, {
          get(target, property, receiver) {
            if (property === "service") {
              return (service: DescService, implementation: unknown, ...rest: unknown[]) => {
                record(service, implementation);
                (target.service as (...args: unknown[]) => unknown).call(target, service, implementation, ...rest);
                return recording;
              };
            }
            const value = Reflect.get(target, property, receiver) as unknown;
            return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
          },
        });
        routes(recording);
      };
    },

    takeStream(stream, headers) {
      if (!accepts(headers)) return false;
      serve(stream, headers);
      return true;
    },
  };
}
