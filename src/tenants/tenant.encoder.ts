import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { ListTenantsResponse, Tenant } from "../../gen/tenancy/v1/tenant_pb.js";

/**
 * Binary encoders for the messages that carry a tenant, written by hand for
 * the hot paths (GetTenant, LookupTenant, CreateTenant, ListTenants): `params`
 * is a google.protobuf.Struct, and protobuf-es's reflective `toBinary` first
 * turns the JSON object into Struct and Value messages, then walks them
 * field by field, which was the largest single cost of those calls
 * (README, "Where the time goes"). These write the same bytes straight from
 * the JSON object, with protobuf-es's own BinaryWriter; a test checks them
 * against `toBinary` byte for byte, on generated tenants.
 *
 * Field numbers are those of proto/tenancy/v1/tenant.proto and of
 * google/protobuf/struct.proto and timestamp.proto.
 */

function writeTimestamp(w: BinaryWriter, field: number, t: Timestamp | undefined): void {
  if (t === undefined) return;
  w.tag(field, WireType.LengthDelimited).fork();
  if (t.seconds !== 0n) w.tag(1, WireType.Varint).int64(t.seconds);
  if (t.nanos !== 0) w.tag(2, WireType.Varint).int32(t.nanos);
  w.join();
}

function writeString(w: BinaryWriter, field: number, value: string): void {
  if (value !== "") w.tag(field, WireType.LengthDelimited).string(value);
}

/** google.protobuf.Value: one member of its oneof, always written (oneof members have presence). */
function writeValue(w: BinaryWriter, value: JsonValue): void {
  if (value === null) w.tag(1, WireType.Varint).int32(0);
  else if (typeof value === "number") w.tag(2, WireType.Bit64).double(value);
  else if (typeof value === "string") w.tag(3, WireType.LengthDelimited).string(value);
  else if (typeof value === "boolean") w.tag(4, WireType.Varint).bool(value);
  else if (Array.isArray(value)) {
    w.tag(6, WireType.LengthDelimited).fork();
    for (const item of value) {
      w.tag(1, WireType.LengthDelimited).fork();
      writeValue(w, item);
      w.join();
    }
    w.join();
  } else {
    w.tag(5, WireType.LengthDelimited).fork();
    writeStruct(w, value);
    w.join();
  }
}

/** google.protobuf.Struct: `map<string, Value> fields = 1`, entries in the object's key order. */
function writeStruct(w: BinaryWriter, object: JsonObject): void {
  for (const key of Object.keys(object)) {
    w.tag(1, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(key);
    w.tag(2, WireType.LengthDelimited).fork();
    writeValue(w, object[key]!);
    w.join();
    w.join();
  }
}

function writeTenant(w: BinaryWriter, t: Tenant): void {
  writeString(w, 1, t.id);
  writeString(w, 2, t.name);
  writeString(w, 3, t.domain);
  if (t.params !== undefined) {
    w.tag(4, WireType.LengthDelimited).fork();
    writeStruct(w, t.params);
    w.join();
  }
  writeTimestamp(w, 5, t.createTime);
  writeTimestamp(w, 6, t.updateTime);
  writeString(w, 7, t.etag);
  if (t.state !== 0) w.tag(8, WireType.Varint).int32(t.state);
  writeTimestamp(w, 9, t.deleteTime);
  writeTimestamp(w, 10, t.purgeTime);
}

export function encodeTenant(tenant: Tenant): Uint8Array {
  const w = new BinaryWriter();
  writeTenant(w, tenant);
  return w.finish();
}

export function encodeListTenantsResponse(response: ListTenantsResponse): Uint8Array {
  const w = new BinaryWriter();
  for (const tenant of response.tenants) {
    w.tag(1, WireType.LengthDelimited).fork();
    writeTenant(w, tenant);
    w.join();
  }
  writeString(w, 2, response.nextPageToken);
  if (response.totalSize !== 0) w.tag(3, WireType.Varint).int32(response.totalSize);
  return w.finish();
}
