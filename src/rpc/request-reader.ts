import {
  fromBinary,
  fromJson,
  type BinaryReadOptions,
  type DescMessage,
  type JsonValue,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { invalidArgument, InvalidArgumentError, toConnectError } from "../common/errors.js";
import type { CodecMap } from "./codecs.js";
import { isConnectParseError } from "./connect-internals.js";
import { jsonViolations } from "./json-violations.js";
import { findJsonNameProblem } from "./strict-json.js";
import { findStructProtoKey } from "./struct-keys.js";

/**
 * Reading a unary request's message, for every protocol: the one place that
 * turns a request body into a message or into the error the client made.
 * Both transports use it, the gRPC fast path (src/rpc/grpc-fast-path.ts)
 * and the Connect adapter (src/rpc/rpc-handler.ts), so that they accept and
 * refuse the same bodies with the same codes.
 *
 * Connect's own handlers read the body before any interceptor runs, so what
 * they refuse there (an oversized body, bytes that are not protobuf, which
 * they answer INTERNAL) never reaches the access log, the metrics or the
 * error mapping; and they ignore unknown JSON fields. Here a malformed body
 * is the client's mistake (INVALID_ARGUMENT, naming the field when there is
 * one), and the outcome is handed to the interceptors, which answer it like
 * any other error (see `decodedRequestInterceptor`).
 */

export type RpcProtocol = "grpc" | "grpc-web" | "connect";

export interface RpcContentType {
  protocol: RpcProtocol;
  binary: boolean;
  /** Connect's streaming content types (application/connect+proto); gRPC and gRPC-Web use the same ones for both. */
  streaming: boolean;
}

const contentTypes = new Map<string, RpcContentType>([
  ["application/grpc", { protocol: "grpc", binary: true, streaming: false }],
  ["application/grpc+proto", { protocol: "grpc", binary: true, streaming: false }],
  ["application/grpc+json", { protocol: "grpc", binary: false, streaming: false }],
  ["application/grpc-web", { protocol: "grpc-web", binary: true, streaming: false }],
  ["application/grpc-web+proto", { protocol: "grpc-web", binary: true, streaming: false }],
  ["application/grpc-web+json", { protocol: "grpc-web", binary: false, streaming: false }],
  ["application/proto", { protocol: "connect", binary: true, streaming: false }],
  ["application/json", { protocol: "connect", binary: false, streaming: false }],
  ["application/connect+proto", { protocol: "connect", binary: true, streaming: true }],
  ["application/connect+json", { protocol: "connect", binary: false, streaming: true }],
]);

/**
 * What a request's content type says (the types Connect's handlers take);
 * undefined when it is none of the three protocols'. JSON types may name
 * the UTF-8 charset.
 */
export function parseRpcContentType(value: string | undefined | null): RpcContentType | undefined {
  if (!value) return undefined;
  const match = /^([^;\s]+)(?:; ?charset=utf-?8)?$/i.exec(value);
  if (!match) return undefined;
  const type = contentTypes.get(match[1]!.toLowerCase());
  if (!type || (type.binary && match[0] !== match[1])) return undefined;
  return type;
}

export const ACCEPTED_CONTENT_TYPES =
  "application/grpc (or +proto, +json) for gRPC over HTTP/2; application/grpc-web (or +proto, +json) for gRPC-Web; " +
  "application/proto or application/json for the Connect protocol (application/connect+proto or +json for streaming methods)";

/** The request compressions served, as Connect's Node adapter does by default. */
export const compressions = [compressionGzip, compressionBrotli];
type Compression = (typeof compressions)[number];

/**
 * The compression a request names (`grpc-encoding`, `content-encoding`):
 * null for none; UNIMPLEMENTED naming the supported ones otherwise, as the
 * gRPC compression spec and the Connect protocol ask.
 */
export function requestCompression(name: string | null | undefined, acceptHeader: string): Compression | null {
  if (name == null || name === "" || name === "identity") return null;
  const found = compressions.find((c) => c.name === name);
  if (found) return found;
  const supported = compressions.map((c) => c.name).join(",");
  throw new ConnectError(`unknown compression "${name}": supported encodings are ${supported}`, Code.Unimplemented, { [acceptHeader]: supported });
}

/**
 * The compression of the response, as Connect negotiates it: the first of
 * the client's accepted encodings that is served, or the request's own when
 * the client lists none.
 */
export function responseCompression(accepted: string | null | undefined, request: Compression | null): Compression | null {
  if (accepted == null || accepted === "") return request;
  for (const name of accepted.split(",")) {
    const found = compressions.find((c) => c.name === name.trim());
    if (found) return found;
  }
  return null;
}

const grpcTimeoutUnits: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * The client's deadline, in milliseconds from when the request arrived:
 * `grpc-timeout` for gRPC and gRPC-Web, `connect-timeout-ms` for Connect.
 * A malformed value is INVALID_ARGUMENT, as in Connect.
 */
export function parseRequestTimeout(protocol: RpcProtocol, value: string | null | undefined): number | undefined {
  if (value == null) return undefined;
  if (protocol === "connect") {
    if (!/^\d{1,10}$/.test(value)) throw new ConnectError(`protocol error: invalid connect timeout value: ${value}`, Code.InvalidArgument);
    return Number(value);
  }
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) throw new ConnectError(`protocol error: invalid grpc timeout value: ${value}`, Code.InvalidArgument);
  return Number(match[1]) * grpcTimeoutUnits[match[2]!]!;
}

export const tooLarge = (readMaxBytes: number, size?: number) =>
  new ConnectError(
    size === undefined
      ? `message is larger than configured readMaxBytes ${readMaxBytes}`
      : `message size ${size} is larger than configured readMaxBytes ${readMaxBytes}`,
    Code.ResourceExhausted,
  );

/**
 * A request body as it arrives, for both transports: it is refused as soon
 * as it is known to be too large, an enveloped body (gRPC, gRPC-Web) by
 * the length its 5-byte prefix declares, without reading on; any body once
 * more than the limit has arrived.
 */
export class BodyCollector {
  private readonly chunks: Buffer[] = [];
  private received = 0;
  private prefixChecked: boolean;
  private readonly limit: number;

  constructor(
    private readonly readMaxBytes: number,
    enveloped: boolean,
  ) {
    this.prefixChecked = !enveloped;
    this.limit = enveloped ? readMaxBytes + 5 : readMaxBytes;
  }

  /** Adds a chunk; answers RESOURCE_EXHAUSTED once the body is known to be too large. */
  add(chunk: Buffer): ConnectError | undefined {
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (!this.prefixChecked && this.received >= 5) {
      this.prefixChecked = true;
      const length = this.bytes().readUInt32BE(1);
      if (length > this.readMaxBytes) return tooLarge(this.readMaxBytes, length);
    }
    if (this.received > this.limit) return tooLarge(this.readMaxBytes);
    return undefined;
  }

  /** What arrived, in one buffer. */
  bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.received);
  }
}

/**
 * The one message of a unary gRPC or gRPC-Web request body: a 5-byte
 * prefix (flags, big-endian length), then the message. Codes as Connect's,
 * but INVALID_ARGUMENT where Connect says INTERNAL for the client's mistake
 * (a compressed message without `grpc-encoding`).
 */
export function unwrapEnvelope(body: Uint8Array, readMaxBytes: number): { payload: Uint8Array; compressed: boolean } {
  if (body.length === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  if (body.length < 5) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  const flags = body[0]!;
  const length = ((body[1]! << 24) | (body[2]! << 16) | (body[3]! << 8) | body[4]!) >>> 0;
  if (length > readMaxBytes) throw tooLarge(readMaxBytes, length);
  if ((flags & ~0b1) !== 0) throw new ConnectError(`protocol error: unexpected envelope flags ${flags}`, Code.InvalidArgument);
  if (body.length < 5 + length) {
    throw new ConnectError(`protocol error: promised ${length} bytes in enveloped message, got ${body.length - 5} bytes`, Code.InvalidArgument);
  }
  if (body.length > 5 + length) throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
  return { payload: body.subarray(5, 5 + length), compressed: (flags & 0b1) !== 0 };
}

/** Decompression failures are the client's (bad data) unless the result is too large. */
export async function decompress(compression: Compression | null, bytes: Uint8Array, readMaxBytes: number, compressed = true): Promise<Uint8Array> {
  if (!compressed) return bytes;
  if (!compression) throw new ConnectError("protocol error: received a compressed message without grpc-encoding", Code.InvalidArgument);
  try {
    return await compression.decompress(bytes, readMaxBytes);
  } catch (error) {
    const code = error instanceof ConnectError && error.code === Code.ResourceExhausted ? Code.ResourceExhausted : Code.InvalidArgument;
    const message = code === Code.ResourceExhausted ? (error as ConnectError).rawMessage : `the message is not valid ${compression.name} data`;
    throw new ConnectError(message, code);
  }
}

export interface ParseOptions {
  binaryOptions?: Partial<BinaryReadOptions>;
  /** Hand-written decoders of some messages (falling back to fromBinary). */
  decoders?: CodecMap<"decoder">;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The message from its bytes: INVALID_ARGUMENT when they are not one,
 * naming the fields of a JSON request. What protobuf-es would read and then
 * silently lose is refused too, naming where it is: a Struct key
 * `__proto__` (struct-keys.ts), duplicate JSON names (strict-json.ts).
 */
export function parseMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, binary: boolean, options: ParseOptions = {}): MessageShape<Desc> {
  if (binary) {
    const protoKey = findStructProtoKey(schema, bytes);
    if (protoKey) throw toConnectError(invalidArgument(protoKey.field, protoKey.description));
    try {
      return options.decoders?.get(schema)?.(bytes) ?? fromBinary(schema, bytes, { readUnknownFields: true, ...options.binaryOptions });
    } catch (error) {
      throw new ConnectError(`the request is not a valid ${schema.typeName} in the protobuf binary format: ${(error as Error).message}`, Code.InvalidArgument);
    }
  }
  let json: JsonValue;
  try {
    const text = utf8.decode(bytes);
    const nameProblem = findJsonNameProblem(text);
    if (nameProblem) throw toConnectError(invalidArgument(nameProblem.field, nameProblem.description));
    json = JSON.parse(text) as JsonValue;
  } catch (error) {
    if (error instanceof ConnectError) throw error;
    throw new ConnectError(`the request is not valid JSON: ${(error as Error).message}`, Code.InvalidArgument);
  }
  try {
    return fromJson(schema, json, { ignoreUnknownFields: false });
  } catch (error) {
    const violations = jsonViolations(schema, json);
    if (violations.length > 0) throw toConnectError(new InvalidArgumentError(violations));
    throw new ConnectError(`the request is not a valid ${schema.typeName} in JSON: ${(error as Error).message}`, Code.InvalidArgument);
  }
}

/** The outcome of reading a unary request: its message, or the error to answer. */
export type DecodedRequest = { message: unknown } | { error: ConnectError };

export const kDecodedRequest = createContextKey<DecodedRequest | undefined>(undefined, {
  description: "the request message read by src/rpc/request-reader.ts",
});

/**
 * Hands the interceptors and the implementation the message read here (the
 * Connect adapter was given an empty stand-in), or answers with the error
 * the request was refused with: the interceptors outside this one (metrics,
 * the access log) see those refusals like any other answer.
 *
 * Also: a streaming request's message that Connect could not parse is the
 * client's mistake, not INTERNAL.
 */
export function decodedRequestInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (req.stream) {
      try {
        return await next(req);
      } catch (error) {
        if (isConnectParseError(error)) throw new ConnectError(`the request is not a valid ${req.method.input.typeName}: ${error.rawMessage}`, Code.InvalidArgument);
        throw error;
      }
    }
    const decoded = req.contextValues.get(kDecodedRequest);
    if (decoded === undefined) return next(req);
    if ("error" in decoded) throw decoded.error;
    // Set in place, not copied with `{ ...req }`: a spread reads every
    // getter, and the fast path's `signal` makes its AbortController on
    // first read (one per call, for nothing, on the hottest path).
    (req as { message: unknown }).message = decoded.message;
    return next(req);
  };
}
