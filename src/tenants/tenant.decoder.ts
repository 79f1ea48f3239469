import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { CreateTenantRequestSchema, type CreateTenantRequest } from "../../gen/tenancy/v1/tenant_pb.js";

/**
 * A hand-written binary decoder for CreateTenantRequest, the counterpart of
 * tenant.encoder.ts: protobuf-es's reflective `fromBinary` builds Struct and
 * Value messages for `params` and then converts them to JSON, the largest
 * single cost left in a create (README, "Where the time goes").
 *
 * It only takes the plain shape that clients send (name, domain, params,
 * state, params_schema, id, etag, request_id, each at most once, params
 * without repeated keys) and answers undefined for anything else (unknown
 * fields, timestamps, merged repeats, malformed or very deep input), which
 * the caller then decodes with `fromBinary`, errors included. A test checks
 * that whatever it accepts, `fromBinary` decodes to the same message, on
 * generated and on corrupted input.
 *
 * Field numbers are those of proto/tenancy/v1/tenant.proto and
 * google/protobuf/struct.proto.
 */

/**
 * The fields of CreateTenantRequest (and of its Tenant) that this decoder
 * leaves to fromBinary: output-only fields, which clients do not send.
 * test/unit/tenant-codecs-schema.test.ts checks every other field of the
 * schema is read here, so that a field added to the proto fails that test
 * until the decoder reads it (or it is listed here).
 */
export const FIELDS_LEFT_TO_FROM_BINARY: ReadonlySet<string> = new Set([
  "tenancy.v1.Tenant.create_time",
  "tenancy.v1.Tenant.update_time",
  "tenancy.v1.Tenant.delete_time",
  "tenancy.v1.Tenant.purge_time",
]);

/** Not the plain shape: leave it to fromBinary. */
const FALLBACK = Symbol("fallback");
const MAX_DEPTH = 32;
// Malformed UTF-8 is left to fromBinary (which refuses it in proto3 strings).
const utf8 = new TextDecoder("utf-8", { fatal: true });

class Reader {
  constructor(
    private readonly bytes: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint of at most 32 bits (tags, lengths, enums, bools as sent by real encoders). */
  varint(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw FALLBACK;
      const b = this.bytes[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (result > 0x7fffffff) throw FALLBACK;
        return result;
      }
    }
    throw FALLBACK;
  }

  /** The bounds of a length-delimited field's contents, which the reader then skips. */
  sub(): Reader {
    const length = this.varint();
    const start = this.pos;
    if (start + length > this.end) throw FALLBACK;
    this.pos = start + length;
    return new Reader(this.bytes, start, start + length);
  }

  string(): string {
    const r = this.sub();
    try {
      return utf8.decode(this.bytes.subarray(r.pos, r.end));
    } catch {
      throw FALLBACK;
    }
  }

  double(): number {
    if (this.pos + 8 > this.end) throw FALLBACK;
    const value = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return value;
  }
}

function readValue(r: Reader, depth: number): JsonValue {
  if (depth > MAX_DEPTH || r.done) throw FALLBACK;
  const tag = r.varint();
  let value: JsonValue;
  switch (tag) {
    case (1 << 3) | 0: // null_value
      if (r.varint() !== 0) throw FALLBACK;
      value = null;
      break;
    case (2 << 3) | 1: // number_value
      value = r.double();
      break;
    case (3 << 3) | 2: // string_value
      value = r.string();
      break;
    case (4 << 3) | 0: {
      // bool_value
      const b = r.varint();
      if (b > 1) throw FALLBACK;
      value = b === 1;
      break;
    }
    case (5 << 3) | 2: // struct_value
      value = readStruct(r.sub(), depth + 1);
      break;
    case (6 << 3) | 2: {
      // list_value: repeated Value values = 1
      const list = r.sub();
      const items: JsonValue[] = [];
      while (!list.done) {
        if (list.varint() !== ((1 << 3) | 2)) throw FALLBACK;
        items.push(readValue(list.sub(), depth + 1));
      }
      value = items;
      break;
    }
    default:
      throw FALLBACK;
  }
  // Exactly one member of the oneof.
  if (!r.done) throw FALLBACK;
  return value;
}

/** google.protobuf.Struct: map<string, Value> fields = 1. */
function readStruct(r: Reader, depth: number): JsonObject {
  if (depth > MAX_DEPTH) throw FALLBACK;
  const object: JsonObject = {};
  while (!r.done) {
    if (r.varint() !== ((1 << 3) | 2)) throw FALLBACK;
    const entry = r.sub();
    if (entry.varint() !== ((1 << 3) | 2)) throw FALLBACK;
    const key = entry.string();
    if (entry.varint() !== ((2 << 3) | 2)) throw FALLBACK;
    const value = readValue(entry.sub(), depth);
    // A `__proto__` key never gets here (the fast path refuses the request
    // first, see struct-keys.ts); were it to, assigning it would set the
    // prototype, so it is left to fromBinary like any other odd input.
    if (!entry.done || key === "__proto__" || Object.hasOwn(object, key)) throw FALLBACK;
    object[key] = value;
  }
  return object;
}

interface TenantFields {
  id?: string;
  name?: string;
  domain?: string;
  params?: JsonObject;
  etag?: string;
  state?: number;
  paramsSchema?: string;
}

function readTenant(r: Reader): TenantFields {
  const t: TenantFields = {};
  const once = <K extends keyof TenantFields>(key: K, value: TenantFields[K]) => {
    if (key in t) throw FALLBACK;
    t[key] = value;
  };
  while (!r.done) {
    switch (r.varint()) {
      case (1 << 3) | 2:
        once("id", r.string());
        break;
      case (2 << 3) | 2:
        once("name", r.string());
        break;
      case (3 << 3) | 2:
        once("domain", r.string());
        break;
      case (4 << 3) | 2:
        once("params", readStruct(r.sub(), 1));
        break;
      case (7 << 3) | 2:
        once("etag", r.string());
        break;
      case (8 << 3) | 0:
        once("state", r.varint());
        break;
      case (11 << 3) | 2:
        once("paramsSchema", r.string());
        break;
      default:
        throw FALLBACK;
    }
  }
  return t;
}

/** The request, or undefined when it is not the plain shape (decode it with fromBinary). */
export function decodeCreateTenantRequest(bytes: Uint8Array): CreateTenantRequest | undefined {
  try {
    const r = new Reader(bytes, 0, bytes.length);
    let tenant: TenantFields | undefined;
    let requestId: string | undefined;
    while (!r.done) {
      switch (r.varint()) {
        case (1 << 3) | 2:
          if (tenant) throw FALLBACK;
          tenant = readTenant(r.sub());
          break;
        case (2 << 3) | 2:
          if (requestId !== undefined) throw FALLBACK;
          requestId = r.string();
          break;
        default:
          throw FALLBACK;
      }
    }
    return create(CreateTenantRequestSchema, { tenant, requestId });
  } catch (error) {
    if (error === FALLBACK) return undefined;
    throw error;
  }
}
