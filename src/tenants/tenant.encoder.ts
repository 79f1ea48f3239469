import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ListTenantsResponse, Tenant } from "../../gen/tenancy/v1/tenant_pb.js";

/**
 * Binary encoders for the messages that carry a tenant, written by hand for
 * the hot paths (GetTenant, LookupTenant, CreateTenant, ListTenants): `params`
 * is a google.protobuf.Struct, and protobuf-es's reflective `toBinary` first
 * turns the JSON object into Struct and Value messages, then walks them
 * field by field, which was the largest single cost of those calls
 * (README, "Where the time goes"). These write the same bytes straight from
 * the JSON object into one buffer: a first pass measures every nested
 * message (lengths come before contents in protobuf), the second writes. A
 * test checks them against `toBinary` byte for byte, on generated tenants.
 *
 * Field numbers are those of proto/tenancy/v1/tenant.proto and of
 * google/protobuf/struct.proto and timestamp.proto. Messages with unknown
 * fields are left to `toBinary` (see grpc-fast-path.ts).
 */

// Tags: field number << 3 | wire type (0 varint, 1 64-bit, 2 length-delimited).
const LEN = 2;
const tag = (field: number, wire: number) => (field << 3) | wire;

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** A varint of a signed 64-bit integer (int64 / int32 fields): negatives take ten bytes. */
function int64Size(value: bigint | number): number {
  let v = BigInt.asUintN(64, BigInt(value));
  let size = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    size++;
  }
  return size;
}

/**
 * The first pass's measures, in the order the second pass needs them:
 * UTF-8 lengths of strings and body lengths of nested messages.
 */
class Measures {
  readonly list: number[] = [];
  reserve(): number {
    return this.list.push(0) - 1;
  }
  string(value: string): number {
    const length = Buffer.byteLength(value, "utf8");
    this.list.push(length);
    return varintSize(length) + length;
  }
  /** A length-delimited field's size, tag included, from its body size. */
  static field(body: number): number {
    return 1 + varintSize(body) + body;
  }
}

function measureValue(m: Measures, value: JsonValue): number {
  if (value === null || typeof value === "boolean") return 2;
  if (typeof value === "number") return 9;
  if (typeof value === "string") return 1 + m.string(value);
  const slot = m.reserve();
  let body = 0;
  if (Array.isArray(value)) {
    for (const item of value) {
      const itemSlot = m.reserve();
      const itemBody = measureValue(m, item);
      m.list[itemSlot] = itemBody;
      body += Measures.field(itemBody);
    }
  } else {
    body = measureStruct(m, value);
  }
  m.list[slot] = body;
  return Measures.field(body);
}

/**
 * The keys toBinary writes: all own keys but `__proto__`, which protobuf-es
 * loses when it copies the object into the Struct's map (an assignment to
 * `__proto__` sets a prototype). The service refuses to store such a key
 * (json-keys.ts), but a row written by other means may hold one: it is
 * skipped here too, so that both paths (and every protocol) answer the same.
 */
function structKeys(object: JsonObject): string[] {
  const keys = Object.keys(object);
  return Object.hasOwn(object, "__proto__") ? keys.filter((key) => key !== "__proto__") : keys;
}

function measureStruct(m: Measures, object: JsonObject): number {
  let body = 0;
  for (const key of structKeys(object)) {
    const entrySlot = m.reserve();
    const keySize = 1 + m.string(key);
    const valueSlot = m.reserve();
    const valueBody = measureValue(m, object[key]!);
    m.list[valueSlot] = valueBody;
    const entryBody = keySize + Measures.field(valueBody);
    m.list[entrySlot] = entryBody;
    body += Measures.field(entryBody);
  }
  return body;
}

function timestampBody(t: Timestamp): number {
  return (t.seconds !== 0n ? 1 + int64Size(t.seconds) : 0) + (t.nanos !== 0 ? 1 + int64Size(t.nanos) : 0);
}

function measureTenant(m: Measures, t: Tenant): number {
  let size = 0;
  if (t.id !== "") size += 1 + m.string(t.id);
  if (t.name !== "") size += 1 + m.string(t.name);
  if (t.domain !== "") size += 1 + m.string(t.domain);
  if (t.params !== undefined) {
    const slot = m.reserve();
    const body = measureStruct(m, t.params);
    m.list[slot] = body;
    size += Measures.field(body);
  }
  for (const ts of [t.createTime, t.updateTime]) if (ts) size += Measures.field(timestampBody(ts));
  if (t.etag !== "") size += 1 + m.string(t.etag);
  if (t.state !== 0) size += 1 + int64Size(t.state);
  for (const ts of [t.deleteTime, t.purgeTime]) if (ts) size += Measures.field(timestampBody(ts));
  if (t.paramsSchema !== "") size += 1 + m.string(t.paramsSchema);
  return size;
}

/** The second pass: writes into a buffer of the measured size, taking measures in order. */
class Out {
  private at = 0;
  private next = 0;
  constructor(
    readonly buffer: Buffer,
    private readonly measures: number[],
  ) {}

  measure(): number {
    return this.measures[this.next++]!;
  }
  byte(b: number): void {
    this.buffer[this.at++] = b;
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.buffer[this.at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buffer[this.at++] = n;
  }
  int64(value: bigint | number): void {
    let v = BigInt.asUintN(64, BigInt(value));
    while (v >= 0x80n) {
      this.buffer[this.at++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buffer[this.at++] = Number(v);
  }
  double(v: number): void {
    this.buffer.writeDoubleLE(v, this.at);
    this.at += 8;
  }
  /** A string field's tag, length and bytes. */
  string(field: number, value: string): void {
    this.byte(tag(field, LEN));
    const length = this.measure();
    this.varint(length);
    this.buffer.write(value, this.at, length, "utf8");
    this.at += length;
  }
  /** A message field's tag and (measured) length; its body follows. */
  open(field: number): void {
    this.byte(tag(field, LEN));
    this.varint(this.measure());
  }
}

function writeValue(o: Out, value: JsonValue): void {
  if (value === null) {
    o.byte(tag(1, 0));
    o.byte(0);
  } else if (typeof value === "number") {
    o.byte(tag(2, 1));
    o.double(value);
  } else if (typeof value === "string") {
    o.string(3, value);
  } else if (typeof value === "boolean") {
    o.byte(tag(4, 0));
    o.byte(value ? 1 : 0);
  } else if (Array.isArray(value)) {
    o.open(6);
    for (const item of value) {
      o.open(1);
      writeValue(o, item);
    }
  } else {
    o.open(5);
    writeStruct(o, value);
  }
}

function writeStruct(o: Out, object: JsonObject): void {
  for (const key of structKeys(object)) {
    o.open(1);
    o.string(1, key);
    o.open(2);
    writeValue(o, object[key]!);
  }
}

function writeTimestamp(o: Out, field: number, t: Timestamp | undefined): void {
  if (!t) return;
  o.byte(tag(field, LEN));
  o.varint(timestampBody(t));
  if (t.seconds !== 0n) {
    o.byte(tag(1, 0));
    o.int64(t.seconds);
  }
  if (t.nanos !== 0) {
    o.byte(tag(2, 0));
    o.int64(t.nanos);
  }
}

function writeTenant(o: Out, t: Tenant): void {
  if (t.id !== "") o.string(1, t.id);
  if (t.name !== "") o.string(2, t.name);
  if (t.domain !== "") o.string(3, t.domain);
  if (t.params !== undefined) {
    o.open(4);
    writeStruct(o, t.params);
  }
  writeTimestamp(o, 5, t.createTime);
  writeTimestamp(o, 6, t.updateTime);
  if (t.etag !== "") o.string(7, t.etag);
  if (t.state !== 0) {
    o.byte(tag(8, 0));
    o.int64(t.state);
  }
  writeTimestamp(o, 9, t.deleteTime);
  writeTimestamp(o, 10, t.purgeTime);
  if (t.paramsSchema !== "") o.string(11, t.paramsSchema);
}

export function encodeTenant(tenant: Tenant): Uint8Array {
  const m = new Measures();
  const size = measureTenant(m, tenant);
  const o = new Out(Buffer.allocUnsafe(size), m.list);
  writeTenant(o, tenant);
  return o.buffer;
}

export function encodeListTenantsResponse(response: ListTenantsResponse): Uint8Array {
  const m = new Measures();
  let size = 0;
  for (const tenant of response.tenants) {
    const slot = m.reserve();
    const body = measureTenant(m, tenant);
    m.list[slot] = body;
    size += Measures.field(body);
  }
  if (response.nextPageToken !== "") size += 1 + m.string(response.nextPageToken);
  if (response.totalSize !== 0) size += 1 + int64Size(response.totalSize);
  const o = new Out(Buffer.allocUnsafe(size), m.list);
  for (const tenant of response.tenants) {
    o.open(1);
    writeTenant(o, tenant);
  }
  if (response.nextPageToken !== "") o.string(2, response.nextPageToken);
  if (response.totalSize !== 0) {
    o.byte(tag(3, 0));
    o.int64(response.totalSize);
  }
  return o.buffer;
}
