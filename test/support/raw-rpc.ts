import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code } from "@connectrpc/connect";
import { TenantSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";

/**
 * Calls that typed clients cannot make: a typed client builds its request
 * with protobuf-es, which drops a `__proto__` key before anything is sent
 * and cannot write duplicate names or a JSON `-0`. These send bytes and text
 * as written, over gRPC (HTTP/2, binary) and the Connect protocol (JSON, as
 * curl does), and read the answer without a client library in between.
 */
export interface RawAnswer {
  code: Code;
  /** The tenant's params in the answer, when it succeeded. */
  params?: unknown;
  /** google.rpc.BadRequest field paths, when it failed with them. */
  fields: string[];
  message: string;
}

const TENANT_SERVICE = "/tenancy.v1.TenantService";
/** gRPC status 0, which Connect's Code enum leaves out (it only lists errors). */
export const OK = 0 as Code;

const connectCodes = new Map(
  Object.entries(Code)
    .filter((entry): entry is [string, Code] => typeof entry[1] === "number")
    .map(([name, code]) => [name.replace(/[A-Z]/g, (c, i: number) => `${i === 0 ? "" : "_"}${c.toLowerCase()}`), code]),
);

/** A unary TenantService call with the Connect protocol and a JSON body given as text. */
export async function connectJson(baseUrl: string, method: string, body: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const response = await fetch(`${baseUrl}${TENANT_SERVICE}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", "connect-protocol-version": "1", ...headers },
    body,
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (response.ok) return { code: OK, params: json.params ?? {}, fields: [], message: "" };
  const details = (json.details as Array<{ type: string; value: string }> | undefined) ?? [];
  const badRequest = details.find((d) => d.type === "google.rpc.BadRequest");
  return {
    code: connectCodes.get(String(json.code)) ?? Code.Unknown,
    fields: badRequest ? fromBinary(BadRequestSchema, Buffer.from(badRequest.value, "base64")).fieldViolations.map((v) => v.field) : [],
    message: String(json.message ?? ""),
  };
}

/** A unary TenantService call over gRPC with a binary request given as bytes. */
export function grpcBinary(session: http2.ClientHttp2Session, method: string, message: Uint8Array, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": `${TENANT_SERVICE}/${method}`, "content-type": "application/grpc", te: "trailers", ...headers });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("end", () => {
      const status = Number(trailers["grpc-status"] ?? head["grpc-status"]);
      const body = Buffer.concat(chunks);
      if (status === 0) {
        resolve({ code: OK, params: fromBinary(TenantSchema, body.subarray(5)).params ?? {}, fields: [], message: "" });
        return;
      }
      const details = String(trailers["grpc-status-details-bin"] ?? head["grpc-status-details-bin"] ?? "");
      const badRequest = fromBinary(StatusSchema, Buffer.from(details, "base64")).details.find((d) => d.typeUrl.endsWith("google.rpc.BadRequest"));
      resolve({
        code: status as Code,
        fields: badRequest ? fromBinary(BadRequestSchema, badRequest.value).fieldViolations.map((v) => v.field) : [],
        message: decodeURIComponent(String(trailers["grpc-message"] ?? head["grpc-message"] ?? "")),
      });
    });
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    stream.end(frame);
  });
}

const LEN = WireType.LengthDelimited;

/** google.protobuf.Value from a JSON value, every own key included. */
function writeValue(w: BinaryWriter, value: unknown): void {
  if (value === null) w.tag(1, WireType.Varint).int32(0);
  else if (typeof value === "number") w.tag(2, WireType.Bit64).double(value);
  else if (typeof value === "string") w.tag(3, LEN).string(value);
  else if (typeof value === "boolean") w.tag(4, WireType.Varint).bool(value);
  else if (Array.isArray(value)) {
    w.tag(6, LEN).fork();
    for (const item of value) {
      w.tag(1, LEN).fork();
      writeValue(w, item);
      w.join();
    }
    w.join();
  } else {
    w.tag(5, LEN).fork();
    writeStruct(w, value as Record<string, unknown>);
    w.join();
  }
}

/** google.protobuf.Struct: one map entry per own key, in Object.keys order. */
function writeStruct(w: BinaryWriter, object: Record<string, unknown>): void {
  for (const key of Object.keys(object)) {
    w.tag(1, LEN).fork();
    w.tag(1, LEN).string(key);
    w.tag(2, LEN).fork();
    writeValue(w, object[key]);
    w.join();
    w.join();
  }
}

/** CreateTenantRequest{tenant{name, domain, params}, request_id}. */
export function createTenantBytes(tenant: { name: string; domain: string; params: object }, requestId = ""): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, LEN).fork();
  w.tag(2, LEN).string(tenant.name);
  w.tag(3, LEN).string(tenant.domain);
  w.tag(4, LEN).fork();
  writeStruct(w, tenant.params as Record<string, unknown>);
  w.join();
  w.join();
  if (requestId !== "") w.tag(2, LEN).string(requestId);
  return w.finish();
}

/** UpdateTenantRequest{tenant{id, params}, update_mask{paths}}. */
export function updateTenantBytes(tenant: { id: string; params: object }, paths: readonly string[]): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, LEN).fork();
  w.tag(1, LEN).string(tenant.id);
  w.tag(4, LEN).fork();
  writeStruct(w, tenant.params as Record<string, unknown>);
  w.join();
  w.join();
  w.tag(2, LEN).fork();
  for (const path of paths) w.tag(1, LEN).string(path);
  w.join();
  return w.finish();
}
