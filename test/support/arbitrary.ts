import fc from "fast-check";
import { create, ScalarType, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";

/**
 * fast-check arbitraries made from the generated descriptors, so that
 * property tests cover every field a message has, including fields added
 * after the test was written: a hand-kept list of fields would silently
 * leave those out.
 */

/** The full name of a field, as in `tenancy.v1.Tenant.create_time`. */
export const fullName = (field: DescField) => `${field.parent.typeName}.${field.name}`;

/** Struct keys: any string but `__proto__`, which protobuf-es cannot hold in a Struct (json-keys.ts). */
const jsonKey = fc.string({ unit: "binary", maxLength: 12 }).filter((k) => k !== "__proto__");

/** JSON as a google.protobuf.Struct can hold it: finite numbers (-0 included), any strings and keys. */
export const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.string({ unit: "binary" }),
    fc.array(tie("value"), { maxLength: 4 }),
    tie("object"),
  ),
  object: fc.dictionary(jsonKey, tie("value"), { maxKeys: 5 }),
})) as { value: fc.Arbitrary<JsonValue>; object: fc.Arbitrary<JsonObject> };

function scalar(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return fc.string({ unit: "binary" });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 16 });
    case ScalarType.DOUBLE:
      return fc.double();
    case ScalarType.FLOAT:
      return fc.float();
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.integer();
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.nat(0xffffffff);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    default:
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
  }
}

export interface MessageArbitraryOptions {
  /** Fields left at their defaults, by full name. */
  omit?: ReadonlySet<string>;
  /** Arbitraries for some fields, by full name (in place of what the descriptor says). */
  fields?: Readonly<Record<string, fc.Arbitrary<unknown>>>;
}

/** A value of one field (as protobuf-es represents it in a message). */
export function fieldArbitrary(field: DescField, options: MessageArbitraryOptions = {}, depth = 0): fc.Arbitrary<unknown> {
  const given = options.fields?.[fullName(field)];
  if (given) return given;
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar);
    case "enum":
      return fc.constantFrom(...field.enum.values.map((v) => v.number));
    case "message":
      return messageValue(field.message, options, depth);
    case "list": {
      const item =
        field.listKind === "scalar"
          ? scalar(field.scalar)
          : field.listKind === "enum"
            ? fc.constantFrom(...field.enum.values.map((v) => v.number))
            : messageValue(field.message, options, depth);
      return fc.array(item, { maxLength: 4 });
    }
    case "map": {
      const value =
        field.mapKind === "scalar"
          ? scalar(field.scalar)
          : field.mapKind === "enum"
            ? fc.constantFrom(...field.enum.values.map((v) => v.number))
            : messageValue(field.message, options, depth);
      return fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== "__proto__"), value, { maxKeys: 4 });
    }
  }
}

/** A message-typed value: the JSON types are plain JSON in protobuf-es, the rest messages. */
function messageValue(desc: DescMessage, options: MessageArbitraryOptions, depth: number): fc.Arbitrary<unknown> {
  switch (desc.typeName) {
    case "google.protobuf.Struct":
      return json.object;
    case "google.protobuf.Value":
      return json.value;
    case "google.protobuf.ListValue":
      return fc.array(json.value, { maxLength: 4 });
  }
  if (depth > 8) return fc.constant(create(desc));
  return messageArbitrary(desc, options, depth + 1);
}

/** Messages of this descriptor, each field set or not, oneofs one member or none. */
export function messageArbitrary<Desc extends DescMessage>(desc: Desc, options: MessageArbitraryOptions = {}, depth = 0): fc.Arbitrary<MessageShape<Desc>> {
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      const cases = member.fields.filter((f) => !options.omit?.has(fullName(f)));
      if (cases.length === 0) continue;
      record[member.localName] = fc.oneof(
        fc.constant({ case: undefined }),
        ...cases.map((f) => fieldArbitrary(f, options, depth).map((value) => ({ case: f.localName, value }))),
      );
    } else if (!options.omit?.has(fullName(member))) {
      record[member.localName] = fieldArbitrary(member, options, depth);
    }
  }
  return fc.record(record, { requiredKeys: [] }).map((init) => create(desc, init as never));
}

/** Whether a field's value is its default (a message set with only this value would not write it). */
export function isDefault(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (value === "" || value === 0 || value === 0n || value === false) return true;
  if (value instanceof Uint8Array) return value.length === 0;
  if (Array.isArray(value)) return value.length === 0;
  return false;
}
