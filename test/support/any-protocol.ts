import http from "node:http";
import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/**
 * Requests with whatever bytes and headers a test likes, over HTTP/1.1 or
 * HTTP/2, and their answers read the way each protocol carries a status:
 * gRPC's trailers (or headers, trailers-only), gRPC-Web's trailer frame (or
 * headers), the Connect protocol's error JSON.
 */
export type Protocol = "grpc" | "grpc-web" | "connect";

export interface RawAnswer {
  httpStatus: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The RPC status code (OK is 0); undefined when the answer carries none. */
  code: Code | undefined;
  message: string;
  /** Paths of the google.rpc.BadRequest field violations. */
  fields: string[];
  /** Reasons of google.rpc.ErrorInfo details. */
  reasons: string[];
}

export interface RawRequest {
  path: string;
  /** HTTP version: "1.1" or "2". */
  http: "1.1" | "2";
  headers: Record<string, string>;
  body: Buffer;
}

/** A gRPC / gRPC-Web message frame. */
export function frame(payload: Buffer | string, declaredLength?: number, flags = 0): Buffer {
  const bytes = Buffer.from(payload);
  const header = Buffer.alloc(5);
  header.writeUInt8(flags, 0);
  header.writeUInt32BE(declaredLength ?? bytes.length, 1);
  return Buffer.concat([header, bytes]);
}

/** The content type of a protocol's unary request. */
export function contentType(protocol: Protocol, json: boolean): string {
  if (protocol === "connect") return json ? "application/json" : "application/proto";
  return `application/${protocol}+${json ? "json" : "proto"}`;
}

/** A unary request of `protocol` carrying `message` (framed for gRPC and gRPC-Web). */
export function unary(protocol: Protocol, httpVersion: "1.1" | "2", path: string, message: Buffer | string, json: boolean): RawRequest {
  return {
    path,
    http: httpVersion,
    headers: { "content-type": contentType(protocol, json), ...(protocol === "grpc" ? { te: "trailers" } : {}) },
    body: protocol === "connect" ? Buffer.from(message) : frame(message),
  };
}

export async function send(baseUrl: string, request: RawRequest): Promise<RawAnswer> {
  const raw = request.http === "2" ? await overHttp2(baseUrl, request) : await overHttp1(baseUrl, request);
  return { ...raw, ...status(raw.headers, raw.trailers, raw.body) };
}

interface Raw {
  httpStatus: number;
  headers: http.IncomingHttpHeaders;
  trailers: http.IncomingHttpHeaders;
  body: Buffer;
}

function overHttp1(baseUrl: string, request: RawRequest): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${request.path}`, { method: "POST", headers: request.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ httpStatus: res.statusCode!, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(request.body);
  });
}

async function overHttp2(baseUrl: string, request: RawRequest): Promise<Raw> {
  const session = http2.connect(baseUrl);
  session.on("error", () => {});
  try {
    return await new Promise<Raw>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": request.path, ...request.headers });
      let headers: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      stream.on("response", (h) => (headers = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => resolve({ httpStatus: Number(headers[":status"]), headers, trailers, body: Buffer.concat(chunks) }));
      stream.on("error", reject);
      stream.end(request.body);
    });
  } finally {
    session.close();
  }
}

const codeByName = new Map(
  Object.entries(Code)
    .filter(([, v]) => typeof v === "number")
    .map(([name, v]) => [name.replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase()), v as Code]),
);

function details(list: Array<{ typeUrl: string; value: Uint8Array }>): { fields: string[]; reasons: string[] } {
  const fields: string[] = [];
  const reasons: string[] = [];
  for (const any of list) {
    if (any.typeUrl.endsWith("google.rpc.BadRequest")) fields.push(...fromBinary(BadRequestSchema, any.value).fieldViolations.map((v) => v.field));
    if (any.typeUrl.endsWith("google.rpc.ErrorInfo")) reasons.push(fromBinary(ErrorInfoSchema, any.value).reason);
  }
  return { fields, reasons };
}

/** gRPC-Web's trailers, the last frame of the body (flag 0x80). */
function webTrailers(body: Buffer): http.IncomingHttpHeaders {
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at]!;
    const length = body.readUInt32BE(at + 1);
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x80) {
      const out: http.IncomingHttpHeaders = {};
      for (const line of payload.toString().split("\r\n")) {
        const i = line.indexOf(":");
        if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      return out;
    }
  }
  return {};
}

function status(headers: http.IncomingHttpHeaders, trailers: http.IncomingHttpHeaders, body: Buffer): Pick<RawAnswer, "code" | "message" | "fields" | "reasons"> {
  const type = String(headers["content-type"] ?? "");
  if (type.startsWith("application/grpc")) {
    const where = [trailers, headers, type.startsWith("application/grpc-web") ? webTrailers(body) : {}].find((h) => h["grpc-status"] !== undefined);
    if (!where) return { code: undefined, message: "", fields: [], reasons: [] };
    const bin = where["grpc-status-details-bin"];
    const parsed = bin ? details(fromBinary(StatusSchema, Buffer.from(String(bin), "base64")).details) : { fields: [], reasons: [] };
    return { code: Number(where["grpc-status"]) as Code, message: decodeURIComponent(String(where["grpc-message"] ?? "")), ...parsed };
  }
  if (type.startsWith("application/json") && body.length > 0) {
    let json: { code?: string; message?: string; details?: Array<{ type: string; value: string }> };
    try {
      json = JSON.parse(body.toString());
    } catch {
      return { code: undefined, message: "", fields: [], reasons: [] };
    }
    if (typeof json.code !== "string") return { code: 0 as Code, message: "", fields: [], reasons: [] };
    const list = (json.details ?? []).map((d) => ({ typeUrl: d.type, value: Buffer.from(d.value, "base64") }));
    return { code: codeByName.get(json.code), message: json.message ?? "", ...details(list) };
  }
  return { code: undefined, message: body.toString(), fields: [], reasons: [] };
}
