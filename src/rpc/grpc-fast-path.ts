import http2 from "node:http2";
import { create, isMessage, toBinary, type BinaryReadOptions, type DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createServiceImplSpec,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Logger } from "../logger.js";
import type { CodecMap } from "./codecs.js";
import { setTrailerStatus } from "./connect-internals.js";
import { RecordHeaders } from "./record-headers.js";
import { isShared } from "./shared-messages.js";
import {
  BodyCollector,
  compressions,
  decompress,
  kDecodedRequest,
  parseMessage,
  parseRequestTimeout,
  requestCompression,
  responseCompression,
  unwrapEnvelope,
} from "./request-reader.js";
import type { ServiceRegistration } from "./rpc-handler.js";

/**
 * A lean transport for the most common calls: unary gRPC over HTTP/2 with
 * binary protobuf (what every gRPC client in another backend sends), and
 * server-streaming gRPC (WatchEvents, whose many watchers each get every
 * event: per message, Connect's pipeline cost several times the event). It
 * runs the same interceptors and implementations as the Connect adapter
 * (src/rpc/rpc-handler.ts), applied the way Connect's
 * `invokeUnaryImplementation` applies them, and reads requests with the same
 * code (src/rpc/request-reader.ts); what it leaves out is the generic
 * protocol machinery around them (async-iterable pipelines over the request
 * and response bodies, a web Request/Response conversion, and an
 * AbortController per call, aborted with a DOMException at its end), which
 * costs several times the work of the call itself on the hot read paths
 * (docs: "Where the time goes").
 *
 * Everything else (gRPC-Web, the Connect protocol, JSON, client and bidi
 * streaming, HTTP/1.1, unknown compressions) goes to the Connect adapter, as does any
 * request it does not recognize. GRPC_FAST_PATH=off sends everything there;
 * CI runs the test suite both ways, so that any difference between the two
 * shows as a failing test.
 *
 * The differences that remain, on purpose:
 * - Errors are answered trailers-only (the status in the response headers,
 *   as gRPC allows); Connect sends headers, then trailers.
 * - An oversized message is answered as soon as its length prefix is read,
 *   and the stream is then reset (NO_ERROR) instead of lingering: the status
 *   travels in the headers, which a reset does not overtake.
 */
export interface GrpcFastPathOptions {
  /** The unary methods of these are served here. */
  services: readonly ServiceRegistration[];
  /** The server's interceptors, `responseEncodingInterceptor` among them. */
  interceptors: Interceptor[];
  /** Called when a stream arrives, with its headers. */
  /** Fresh context values for each call, made when it arrives (before its body is read). */
  contextValues: (headers: http2.IncomingHttpHeaders) => ContextValues;
  readMaxBytes: number;
  /** As given to the Connect adapter. */
  binaryOptions?: Partial<BinaryReadOptions>;
  /**
   * Whether the response of this call is a shared, never-modified message
   * (a cache hit), whose encoding can be kept and reused.
   */
  sharedResponse?: (values: ContextValues) => boolean;
  /** Hand-written encoders of some responses (the same bytes as `toBinary`), for messages without unknown fields. */
  encoders?: CodecMap<"encoder">;
  /** Hand-written decoders of some requests. */
  decoders?: CodecMap<"decoder">;
  log: Logger;
}

export interface GrpcFastPath {
  /** Serves this stream when it is eligible (true), judged from its headers alone; else leaves it (false). */
  takeStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean;
}

const CONTENT_TYPES = new Set(["application/grpc", "application/grpc+proto"]);
const RESPONSE_CONTENT_TYPE = "application/grpc+proto";
/** Messages this small are sent uncompressed, as by Connect's default `compressMinBytes`. */
const COMPRESS_MIN_BYTES = 1024;

/** A fast-path call's response, encoded by `responseEncodingInterceptor`. */
interface ResponseSlot {
  frame?: Buffer;
  encode(message: object, values: ContextValues): Promise<Buffer>;
}

const kResponseSlot = createContextKey<ResponseSlot | undefined>(undefined, { description: "the gRPC fast path's response" });

/**
 * Encodes a fast-path call's response inside the interceptor chain, placed
 * inside the error interceptor: an encoding that fails is logged and
 * answered INTERNAL, and counted so by the metrics and the access log, like
 * every other failure. Calls served by Connect pass through untouched
 * (Connect encodes after its interceptors).
 */
export function responseEncodingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    const slot = req.contextValues.get(kResponseSlot);
    if (slot && !res.stream) slot.frame = await slot.encode(res.message, req.contextValues);
    return res;
  };
}

/** A gRPC message frame: flags (1: compressed), 4-byte big-endian length, the message. */
function frame(message: Uint8Array, compressed: boolean): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** Resolves when a stream that asked the writer to wait can take more, or is closed. */
function drained(stream: http2.ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

function toNodeHeaders(headers: Headers, into: http2.OutgoingHttpHeaders = {}): http2.OutgoingHttpHeaders {
  headers.forEach((value, key) => {
    into[key] = value;
  });
  return into;
}

export function createGrpcFastPath(options: GrpcFastPathOptions): GrpcFastPath {
  const toBytes = (schema: DescMessage, message: object): Uint8Array => {
    const encoder = options.encoders?.get(schema);
    return encoder && (message as { $unknown?: unknown }).$unknown === undefined ? encoder(message as never) : toBinary(schema, message as never);
  };
  /** Encoded frames of shared response messages, by compression, dropped with the messages. */
  const sharedFrames = new WeakMap<object, Map<string, Buffer>>();
  const specs = new Map<string, MethodImplSpec & { kind: "unary" | "server_streaming" }>();
  for (const [service, implementation] of options.services) {
    for (const method of Object.values(createServiceImplSpec(service, implementation).methods)) {
      if (method.kind === "unary" || method.kind === "server_streaming") specs.set(`/${service.typeName}/${method.method.name}`, method);
    }
  }

  /** Whether this stream is served here, from its headers alone (before its body is read). */
  const accepts = (headers: http2.IncomingHttpHeaders): boolean => {
    if (headers[":method"] !== "POST") return false;
    const path = headers[":path"];
    if (path === undefined || !specs.has(path)) return false;
    const type = headers["content-type"];
    if (type === undefined || !CONTENT_TYPES.has(type)) return false;
    const encoding = headers["grpc-encoding"];
    return encoding === undefined || encoding === "identity" || compressions.some((c) => c.name === encoding);
  };

  const serve = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const path = headers[":path"]!;
    const spec = specs.get(path)!;
    const contextValues = options.contextValues(headers);
    const body = new BodyCollector(options.readMaxBytes, true);
    /** Set once the body is read (or refused): from then on the call runs, or has answered. */
    let started = false;
    let finished = false;
    let controller: AbortController | undefined;
    const abort = (reason: unknown) => {
      controller ??= new AbortController();
      if (!controller.signal.aborted) controller.abort(reason);
    };

    // The deadline runs from the request's arrival, as in Connect's handlers.
    let deadline: NodeJS.Timeout | undefined;
    let timeoutMs: () => number | undefined = () => undefined;
    let refusal: ConnectError | undefined;
    try {
      const timeout = parseRequestTimeout("grpc", headers["grpc-timeout"] as string | undefined);
      if (timeout !== undefined) {
        const at = performance.now() + timeout;
        timeoutMs = () => at - performance.now();
        deadline = setTimeout(() => abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
      }
    } catch (error) {
      refusal = error as ConnectError;
    }
    const compression = requestCompression(headers["grpc-encoding"] as string | undefined, "grpc-accept-encoding");
    const answerCompression = responseCompression(headers["grpc-accept-encoding"] as string | undefined, compression);
    /** A response message's frame; a shared message's is made once per compression and kept with it. */
    const encodeFrame = async (message: object, shared: boolean): Promise<Buffer> => {
      const name = answerCompression?.name ?? "identity";
      let frames = shared ? sharedFrames.get(message) : undefined;
      const kept = frames?.get(name);
      if (kept) return kept;
      const bytes = toBytes(spec.method.output, message);
      const out = answerCompression && bytes.length >= COMPRESS_MIN_BYTES ? frame(await answerCompression.compress(bytes), true) : frame(bytes, false);
      if (shared) {
        if (!frames) sharedFrames.set(message, (frames = new Map()));
        frames.set(name, out);
      }
      return out;
    };
    const slot: ResponseSlot = {
      encode: (message, values) => encodeFrame(message, options.sharedResponse?.(values) ?? false),
    };

    const respondError = (error: ConnectError, responseHeader?: Headers, responseTrailer?: Headers) => {
      if (stream.destroyed || stream.closed) return;
      const trailer = setTrailerStatus(responseTrailer ?? new RecordHeaders().asHeaders(), error);
      // Trailers-only: the status travels with the headers.
      const out: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": RESPONSE_CONTENT_TYPE };
      if (responseHeader) toNodeHeaders(responseHeader, out);
      toNodeHeaders(trailer, out);
      stream.respond(out, { endStream: true });
      // Stop a client still sending (an oversized message): RFC 9113 section 8.1.
      if (!stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    };

    /** The request the interceptors see; its signal is made on first read, and aborted only if the call is cancelled or times out. */
    const requestOf = (streaming: boolean, message: unknown) => ({
      stream: streaming,
      message,
      method: spec.method,
      service: spec.method.parent,
      requestMethod: "POST",
      url: `http://${String(headers[":authority"] ?? "localhost")}${path}`,
      get signal() {
        return (controller ??= new AbortController()).signal;
      },
      header: new RecordHeaders(headers).asHeaders(),
      contextValues,
    });

    /** The handler's context, as Connect makes it; its signal is the request's, read (and so made) only if the handler reads it. */
    const handlerContext = (req: UnaryRequest | StreamRequest, responseHeader: Headers, responseTrailer: Headers): HandlerContext => ({
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
    });

    /** Runs the call: `input` is the request message, or undefined when `refusal` answers it. */
    const run = async (input: unknown) => {
      const responseHeader = new RecordHeaders({ "content-type": RESPONSE_CONTENT_TYPE }).asHeaders();
      if (answerCompression) responseHeader.set("grpc-encoding", answerCompression.name);
      const responseTrailer = new RecordHeaders({ "grpc-status": "0" }).asHeaders();
      contextValues.set(kResponseSlot, slot);
      if (refusal) contextValues.set(kDecodedRequest, { error: refusal });
      const request = requestOf(false, input ?? create(spec.method.input)) as UnaryRequest;
      // What Connect's invokeUnaryImplementation does, without copying the
      // context per call (which reads, and so creates, the signal).
      const implementation = async (req: UnaryRequest): Promise<UnaryResponse> => {
        const context = handlerContext(req, responseHeader, responseTrailer);
        const out = await (spec.impl as (message: unknown, context: HandlerContext) => Promise<unknown>)(req.message, context);
        const message = isMessage(out, spec.method.output) ? out : create(spec.method.output, out as never);
        return { stream: false, message, method: spec.method, service: spec.method.parent, header: responseHeader, trailer: responseTrailer } as UnaryResponse;
      };
      let payload: Buffer;
      try {
        let call = implementation;
        for (let i = options.interceptors.length - 1; i >= 0; i--) call = options.interceptors[i]!(call as never) as typeof call;
        const response = await call(request);
        if (response.header !== responseHeader) response.header.forEach((value, key) => responseHeader.set(key, value));
        if (response.trailer !== responseTrailer) response.trailer.forEach((value, key) => responseTrailer.set(key, value));
        // Encoded in the chain by responseEncodingInterceptor, unless an interceptor outside it answered.
        payload = slot.frame ?? (await slot.encode(response.message, contextValues));
      } catch (error) {
        // The error interceptor made every failure of the call a ConnectError (and logged INTERNAL ones).
        if (!(error instanceof ConnectError)) options.log.error({ procedure: path.slice(1), err: error }, "internal error");
        respondError(
          error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, undefined, undefined, error),
          responseHeader,
          responseTrailer,
        );
        return;
      }
      if (stream.destroyed || stream.closed) return;
      try {
        stream.respond(toNodeHeaders(responseHeader, { ":status": 200 }), { waitForTrailers: true });
        stream.once("wantTrailers", () => stream.sendTrailers(toNodeHeaders(responseTrailer)));
        stream.end(payload);
      } catch (error) {
        // Headers are checked as they are set (RecordHeaders), so this is a bug.
        options.log.error({ procedure: path.slice(1), err: error }, "internal error");
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      }
    };

    /**
     * Runs a server-streaming call: the interceptors and the implementation
     * as Connect's invokeStreamImplementation applies them, each response
     * message framed as the unary path frames its one. Headers go out with
     * the first message (a handler may set them until then), the status in
     * the trailers; an error before the first message is answered
     * trailers-only. The frames written in one turn of the event loop go to
     * the socket together (the stream is corked until the next tick), and a
     * shared message (src/rpc/shared-messages.ts) is framed once for every
     * call that sends it.
     */
    const runStream = async (input: unknown) => {
      const responseHeader = new RecordHeaders({ "content-type": RESPONSE_CONTENT_TYPE }).asHeaders();
      if (answerCompression) responseHeader.set("grpc-encoding", answerCompression.name);
      const responseTrailer = new RecordHeaders({ "grpc-status": "0" }).asHeaders();
      const request = requestOf(
        true,
        // The request's one message, or its refusal when it is read (inside the interceptors, which then count it).
        (async function* () {
          if (refusal) throw refusal;
          yield input;
        })(),
      ) as StreamRequest;
      const implementation = async (req: StreamRequest): Promise<StreamResponse> => {
        let message: unknown;
        for await (const m of req.message) message = m;
        const context = handlerContext(req, responseHeader, responseTrailer);
        const out = (spec.impl as (message: unknown, context: HandlerContext) => AsyncIterable<unknown>)(message, context);
        return { stream: true, message: out, method: spec.method, service: spec.method.parent, header: responseHeader, trailer: responseTrailer } as StreamResponse;
      };
      let headersSent = false;
      let corked = false;
      const sendHeaders = () => {
        headersSent = true;
        stream.respond(toNodeHeaders(responseHeader, { ":status": 200 }), { waitForTrailers: true });
      };
      try {
        let call = implementation;
        for (let i = options.interceptors.length - 1; i >= 0; i--) call = options.interceptors[i]!(call as never) as typeof call;
        const response = await call(request);
        if (response.header !== responseHeader) response.header.forEach((value, key) => responseHeader.set(key, value));
        for await (const sent of response.message) {
          if (stream.destroyed || stream.closed) break;
          const message = isMessage(sent, spec.method.output) ? sent : create(spec.method.output, sent as never);
          const payload = await encodeFrame(message, isShared(message));
          if (stream.destroyed || stream.closed) break;
          if (!headersSent) sendHeaders();
          if (!corked) {
            corked = true;
            stream.cork();
            process.nextTick(() => {
              corked = false;
              stream.uncork();
            });
          }
          // A client that reads slowly holds the next message back here (the hub's bounded backlog then ends the watch).
          if (!stream.write(payload)) await drained(stream);
        }
        if (response.trailer !== responseTrailer) response.trailer.forEach((value, key) => responseTrailer.set(key, value));
        // A deadline that passed (or a cancel) ends the implementation's stream early: answer with its reason.
        const reason = controller?.signal.aborted ? controller.signal.reason : undefined;
        if (reason instanceof ConnectError) throw reason;
      } catch (error) {
        // The error interceptor made every failure of the call a ConnectError (and logged INTERNAL ones).
        if (!(error instanceof ConnectError)) options.log.error({ procedure: path.slice(1), err: error }, "internal error");
        const failure = error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
        if (!headersSent) return respondError(failure, responseHeader, responseTrailer);
        setTrailerStatus(responseTrailer, failure);
      }
      if (stream.destroyed || stream.closed) return;
      try {
        if (!headersSent) sendHeaders();
        stream.once("wantTrailers", () => stream.sendTrailers(toNodeHeaders(responseTrailer)));
        stream.end();
      } catch (error) {
        options.log.error({ procedure: path.slice(1), err: error }, "internal error");
        stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      }
    };

    const start = (input: unknown) => {
      started = true;
      (spec.kind === "unary" ? run : runStream)(input)
        .catch((error: unknown) => {
          options.log.error({ procedure: path.slice(1), err: error }, "internal error");
          respondError(new ConnectError("internal error", Code.Internal));
        })
        .finally(() => {
          finished = true;
          clearTimeout(deadline);
        });
    };

    const refuse = (error: ConnectError) => {
      refusal ??= error;
      // Whatever else arrives before the reset is dropped: a stream left
      // paused with unread data would never be destroyed, and would hold
      // its connection open at shutdown.
      stream.off("data", onData);
      stream.resume();
      start(undefined);
    };

    const onData = (chunk: Buffer) => {
      const refusal = body.add(chunk);
      if (refusal) refuse(refusal);
    };
    stream.on("data", onData);
    stream.on("end", () => {
      if (started) return;
      if (refusal) return start(undefined);
      const parse = (bytes: Uint8Array) =>
        parseMessage(spec.method.input, bytes, true, { binaryOptions: options.binaryOptions, decoders: options.decoders });
      let envelope: { payload: Uint8Array; compressed: boolean };
      try {
        envelope = unwrapEnvelope(body.bytes(), options.readMaxBytes);
        // Uncompressed (the common case), read at once: no extra turn of the event loop per call.
        if (!envelope.compressed) return start(parse(envelope.payload));
      } catch (error) {
        return refuse(error as ConnectError);
      }
      decompress(compression, envelope.payload, options.readMaxBytes)
        .then(parse)
        .then(start, (error: unknown) => refuse(error as ConnectError));
    });
    stream.on("close", () => {
      clearTimeout(deadline);
      if (!finished) abort(new ConnectError("the call was cancelled", Code.Canceled));
    });
    stream.on("error", () => {});
  };

  return {
    takeStream(stream, headers) {
      if (!accepts(headers)) return false;
      serve(stream, headers);
      return true;
    },
  };
}
