import type { DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { FieldViolation } from "../common/errors.js";
import { keySegment, PROTO_KEY, PROTO_KEY_RULE } from "../common/json-keys.js";

const PROTO_KEY_UTF8 = Buffer.from(PROTO_KEY);
/** As the binaryOptions' recursionLimit: deeper input is refused by fromBinary itself. */
const MAX_DEPTH = 2_000;

/**
 * The binary counterpart of strict-json.ts: a google.protobuf.Struct key
 * `__proto__` anywhere in a request (say `tenant.params.a.__proto__`), which
 * fromBinary would drop (json-keys.ts). Reads the encoded message along its
 * schema, only when the bytes contain `__proto__` at all. Input that is not
 * valid protobuf yields undefined: fromBinary reports it.
 */
export function findStructProtoKey(schema: DescMessage, bytes: Uint8Array): FieldViolation | undefined {
  if (Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).indexOf(PROTO_KEY_UTF8) === -1) return undefined;
  try {
    const path = walkMessage(schema, bytes, "", 0);
    return path === undefined ? undefined : { field: path, description: PROTO_KEY_RULE };
  } catch {
    return undefined;
  }
}

/** The path of the first `__proto__` Struct key within this message's fields, in wire order. */
function walkMessage(schema: DescMessage, bytes: Uint8Array, path: string, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  // The JSON types: their keys and indexes are the path, not their field names.
  if (schema.typeName === "google.protobuf.Struct") return walkStruct(bytes, path, depth);
  if (schema.typeName === "google.protobuf.Value") return walkValue(bytes, path, depth);
  if (schema.typeName === "google.protobuf.ListValue") return walkList(bytes, path, depth);
  const r = new BinaryReader(bytes);
  const counts = new Map<number, number>();
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    const field = wireType === WireType.LengthDelimited ? schema.fields.find((f) => f.number === no) : undefined;
    const message = field?.fieldKind === "message" ? field.message : field?.fieldKind === "list" ? field.message : undefined;
    if (!field || !message) {
      r.skip(wireType, no);
      continue;
    }
    let fieldPath = `${path}${path === "" ? "" : "."}${field.name}`;
    if (field.fieldKind === "list") {
      const index = counts.get(no) ?? 0;
      counts.set(no, index + 1);
      fieldPath += `[${index}]`;
    }
    const found = walkMessage(message, r.bytes(), fieldPath, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Struct: map<string, Value> fields = 1; each entry is a key (1) and a Value (2). */
function walkStruct(bytes: Uint8Array, path: string, depth: number): string | undefined {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    if (no !== 1 || wireType !== WireType.LengthDelimited) {
      r.skip(wireType, no);
      continue;
    }
    const entry = new BinaryReader(r.bytes());
    let key = "";
    let value: Uint8Array | undefined;
    while (entry.pos < entry.len) {
      const [entryNo, entryWireType] = entry.tag();
      if (entryNo === 1 && entryWireType === WireType.LengthDelimited) key = entry.string();
      else if (entryNo === 2 && entryWireType === WireType.LengthDelimited) value = entry.bytes();
      else entry.skip(entryWireType, entryNo);
    }
    const keyPath = `${path}.${keySegment(key)}`;
    if (key === PROTO_KEY) return keyPath;
    const found = value && walkValue(value, keyPath, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Value: struct_value (5) or list_value (6, a ListValue: repeated Value values = 1); the rest holds no keys. */
function walkValue(bytes: Uint8Array, path: string, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    if (wireType !== WireType.LengthDelimited || (no !== 5 && no !== 6)) {
      r.skip(wireType, no);
      continue;
    }
    const inner = r.bytes();
    const found = no === 5 ? walkStruct(inner, path, depth + 1) : walkList(inner, path, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

function walkList(bytes: Uint8Array, path: string, depth: number): string | undefined {
  const r = new BinaryReader(bytes);
  let index = 0;
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    if (no !== 1 || wireType !== WireType.LengthDelimited) {
      r.skip(wireType, no);
      continue;
    }
    const found = walkValue(r.bytes(), `${path}[${index++}]`, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}
