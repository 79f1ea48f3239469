import type { IncomingHttpHeaders } from "node:http";
import http2 from "node:http2";
import type { BinaryReadOptions, DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, type ContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "../logger.js";
import type { Request, Response } from "../http/one-port.js";
import type { CodecMap } from "./codecs.js";
import {
  setTrailerStatus,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
  type UniversalHandler,
  type UniversalServerRequest,
} from "./connect-internals.js";
import { strictJsonTextDecoder } from "./strict-json.js";
import {
  ACCEPTED_CONTENT_TYPES,
  BodyCollector,
  compressions,
  decompress,
  kDecodedRequest,
  parseMessage,
  parseRequestTimeout,
  parseRpcContentType,
  requestCompression,
  tooLarge,
  unwrapEnvelope,
  type DecodedRequest,
  type RpcContentType,
} from "./request-reader.js";

/** A service and its implementation, as the server registers them (with Connect and with the fast path). */
export type ServiceRegistration = readonly [DescService, Partial<ServiceImpl<DescService>>];

/** A registration whose implementation is checked against its service's methods. */
export function serviceRegistration<S extends DescService>(service: S, implementation: Partial<ServiceImpl<S>>): ServiceRegistration {
  return [service, implementation as Partial<ServiceImpl<DescService>>];
}

export interface RpcHandlerOptions {
  services: readonly ServiceRegistration[];
  interceptors: Interceptor[];
  /** Fresh context values for each request, made when it arrives (before its body is read). */
  contextValues: (headers: IncomingHttpHeaders) => ContextValues;
  /** Largest accepted request message, in bytes (after decompression). */
  readMaxBytes: number;
  binaryOptions?: Partial<BinaryReadOptions>;
  decoders?: CodecMap<"decoder">;
  /** Requests that are no RPC's: another path, and none of the protocols' content types. */
  fallback: (req: Request, res: Response) => void;
  log: Logger;
}

/**
 * The Node request handler for gRPC, gRPC-Web and Connect, around Connect's
 * router: Connect negotiates the protocol, runs the interceptors and the
 * implementation, and writes the answer; the body of a unary request is
 * read here (src/rpc/request-reader.ts) and Connect is handed an empty
 * stand-in, the message itself reaching the interceptors through the
 * context. Streaming methods go to Connect as they come. Requests Connect
 * would answer with a bare status (an unknown method, a content type of no
 * protocol, gRPC over HTTP/1.1) get an answer in the protocol's shape that
 * says what is wrong.
 */
export function createRpcHandler(options: RpcHandlerOptions): (req: Request, res: Response) => void {
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes,
    binaryOptions: options.binaryOptions,
    // For the messages of streaming requests, which Connect reads itself:
    // unknown fields, duplicate names and `__proto__` keys refused as in
    // request-reader.ts. Connect reads `textDecoder` (JsonSerializationOptions)
    // though the router's type does not list it; params-roundtrip.test.ts checks it.
    jsonOptions: { ignoreUnknownFields: false, textDecoder: strictJsonTextDecoder() } as { ignoreUnknownFields: boolean },
    acceptCompression: compressions,
  });
  for (const [service, implementation] of options.services) router.service(service, implementation);
  const handlers = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  const services = new Set(options.services.map(([service]) => service.typeName));

  const invoke = (handler: UniversalHandler, req: Request, res: Response, uReq: UniversalServerRequest) => {
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        // The client went away: nobody reads an answer.
        if (ConnectError.from(reason).code === Code.Aborted || clientGone(req)) return;
        options.log.error({ err: reason, procedure: `${handler.service.typeName}/${handler.method.name}` }, "internal error");
      });
  };

  return (req, res) => {
    const path = req.url?.split("?", 1)[0] ?? "";
    const contentType = headerOf(req, "content-type");
    const type = parseRpcContentType(contentType);
    const handler = handlers.get(path);
    if (type?.protocol === "grpc" && req.httpVersionMajor < 2) {
      return plainAnswer(res, 505, "gRPC needs HTTP/2, and this request came over HTTP/1.1: use HTTP/2, or gRPC-Web or the Connect protocol, which work over HTTP/1.1\n");
    }
    if (!handler) {
      if (!type) return options.fallback(req, res);
      const service = /^\/([^/]+)\//.exec(path)?.[1];
      const message =
        service !== undefined && services.has(service)
          ? `unknown method ${path.slice(service.length + 2)} of service ${service}`
          : `unknown service ${service ?? path}: this server has ${[...services].join(", ")}`;
      return statusAnswer(res, type, new ConnectError(message, Code.Unimplemented));
    }
    const unary = handler.method.methodKind === "unary";
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST", "content-type": "text/plain; charset=utf-8" });
      return void res.end(`RPCs are called with POST, not ${req.method}\n`);
    }
    if (!type || (type.protocol === "connect" && type.streaming === unary)) {
      return plainAnswer(
        res,
        415,
        `${contentType ? `unsupported content type "${contentType}"` : "missing content type"}: ` +
          `${unary ? "this method" : "this streaming method"} takes ${ACCEPTED_CONTENT_TYPES}\n`,
      );
    }
    if (!unary) return invoke(handler, req, res, universalRequestFromNodeRequest(req, res, undefined, options.contextValues(req.headers)));

    // The deadline runs from now, as in Connect's handlers, not from when the body is read.
    const arrived = performance.now();
    const values = options.contextValues(req.headers);
    readBody(req, type, options.readMaxBytes, (body) => {
      decode(body, type, handler.method, req, options)
        .then((decoded) => {
          // The client is gone (or never sent its body): nothing to answer.
          if (decoded === undefined || clientGone(req)) return;
          let header: Headers;
          try {
            header = standInHeader(req, type, arrived);
          } catch (error) {
            decoded = { error: error as ConnectError };
            header = standInHeader(req, type, arrived, false);
          }
          values.set(kDecodedRequest, decoded);
          invoke(handler, req, res, { ...universalRequestFromNodeRequest(req, res, undefined, values), header, body: once(standInBody(type)) });
        })
        .catch((error: unknown) => {
          options.log.error({ err: error, procedure: `${handler.service.typeName}/${handler.method.name}` }, "internal error");
          if (!res.headersSent) statusAnswer(res, type, new ConnectError("internal error", Code.Internal));
        });
    });
  };
}

function clientGone(req: Request): boolean {
  return req instanceof http2.Http2ServerRequest ? req.stream.destroyed : (req.socket?.destroyed ?? true);
}

function headerOf(req: Request, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

function plainAnswer(res: Response, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
  res.end(text);
}

/**
 * An error in the protocol's own shape (UNIMPLEMENTED or INTERNAL, the
 * two answered here): gRPC's and gRPC-Web's trailers-only, Connect's error
 * JSON with its HTTP status.
 */
function statusAnswer(res: Response, type: RpcContentType, error: ConnectError): void {
  if (type.protocol === "connect") {
    res.writeHead(error.code === Code.Unimplemented ? 404 : 500, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: Code[error.code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase()), message: error.rawMessage }));
    return;
  }
  const headers = setTrailerStatus(new Headers({ "content-type": type.protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto" }), error);
  res.writeHead(200, Object.fromEntries(headers));
  res.end();
}

type Body = { bytes: Buffer } | { error: ConnectError } | undefined;

/**
 * Reads a unary request's body, up to what a valid one can hold: a body
 * over the limit is not read further (the listener drops the rest once the
 * answer is out, see src/http/one-port.ts). Undefined when the client went
 * away first.
 */
function readBody(req: Request, type: RpcContentType, readMaxBytes: number, done: (body: Body) => void): void {
  const enveloped = type.protocol !== "connect";
  const declared = Number(headerOf(req, "content-length"));
  if (!enveloped && declared > readMaxBytes) return done({ error: tooLarge(readMaxBytes, declared) });
  const body = new BodyCollector(readMaxBytes, enveloped);
  const finish = (result: Body) => {
    req.off("data", onData);
    req.off("end", onEnd);
    req.off("error", onGone);
    req.off("close", onGone);
    done(result);
  };
  const onData = (chunk: Buffer) => {
    const refusal = body.add(chunk);
    if (refusal) {
      req.pause();
      finish({ error: refusal });
    }
  };
  const onEnd = () => finish({ bytes: body.bytes() });
  const onGone = () => finish(undefined);
  req.on("data", onData);
  req.on("end", onEnd);
  req.on("error", onGone);
  req.on("close", onGone);
}

/** The request's message, or the error to answer it with; undefined when there is nothing to answer. */
async function decode(body: Body, type: RpcContentType, method: DescMethod, req: Request, options: RpcHandlerOptions): Promise<DecodedRequest | undefined> {
  if (body === undefined) return undefined;
  if ("error" in body) return { error: body.error };
  try {
    const enveloped = type.protocol !== "connect";
    const encodingHeader = enveloped ? "grpc-encoding" : "content-encoding";
    const compression = requestCompression(headerOf(req, encodingHeader), enveloped ? "grpc-accept-encoding" : "accept-encoding");
    let bytes: Uint8Array = body.bytes;
    if (enveloped) {
      const { payload, compressed } = unwrapEnvelope(body.bytes, options.readMaxBytes);
      bytes = await decompress(compression, payload, options.readMaxBytes, compressed);
    } else if (compression) {
      bytes = await decompress(compression, body.bytes, options.readMaxBytes);
    }
    return { message: parseMessage(method.input, bytes, type.binary, { binaryOptions: options.binaryOptions, decoders: options.decoders }) };
  } catch (error) {
    if (error instanceof ConnectError) return { error };
    throw error;
  }
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** An empty message in the request's format, which Connect reads in place of the body already read here. */
function standInBody(type: RpcContentType): Uint8Array {
  const message = type.binary ? new Uint8Array(0) : new TextEncoder().encode("{}");
  if (type.protocol === "connect") return message;
  const envelope = new Uint8Array(5 + message.length);
  envelope.set([0, 0, 0, 0, message.length], 0);
  envelope.set(message, 5);
  return envelope;
}

/**
 * The request's headers as Connect must see them with the stand-in body:
 * no content length and no compression (the response's compression is
 * still negotiated from what the client sent), and the deadline shortened
 * by the time the body took, so that it still counts from the request's
 * arrival. Throws a malformed deadline's error; `withTimeout` false leaves
 * the deadline out.
 */
function standInHeader(req: Request, type: RpcContentType, arrived: number, withTimeout = true): Headers {
  const header = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (key.startsWith(":") || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) header.append(key, v);
  }
  header.delete("content-length");
  const enveloped = type.protocol !== "connect";
  const [encodingHeader, acceptHeader] = enveloped ? ["grpc-encoding", "grpc-accept-encoding"] : ["content-encoding", "accept-encoding"];
  const encoding = header.get(encodingHeader);
  if (encoding !== null) {
    header.delete(encodingHeader);
    if (!header.has(acceptHeader)) header.set(acceptHeader, encoding);
  }
  const timeoutHeader = enveloped ? "grpc-timeout" : "connect-timeout-ms";
  const timeoutMs = withTimeout ? parseRequestTimeout(type.protocol, header.get(timeoutHeader)) : undefined;
  header.delete(timeoutHeader);
  if (timeoutMs !== undefined) {
    const left = Math.max(1, Math.ceil(timeoutMs - (performance.now() - arrived)));
    header.set(timeoutHeader, enveloped ? grpcTimeout(left) : String(left));
  }
  return header;
}

/** A gRPC timeout value (at most 8 digits) of this many milliseconds. */
function grpcTimeout(ms: number): string {
  if (ms < 1e8) return `${ms}m`;
  if (ms < 1e11) return `${Math.ceil(ms / 1000)}S`;
  return `${Math.min(99_999_999, Math.ceil(ms / 3_600_000))}H`;
}
