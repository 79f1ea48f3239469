import { fromJson, ScalarType, type DescField, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import type { FieldViolation } from "../common/errors.js";

/**
 * Which fields of a JSON request protobuf-es refused, with their paths:
 * `fromJson` says what it could not read (`cannot decode message
 * tenancy.v1.Tenant from JSON: key "plan" is unknown`) but not where. Run
 * only after `fromJson` failed, so it costs nothing on good requests. Paths
 * use proto field names, as every other field violation does
 * (`tenant.params`); an unknown key is named as the client wrote it.
 */
export function jsonViolations(desc: DescMessage, json: JsonValue, path = ""): FieldViolation[] {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    return [{ field: path, description: `expected a JSON object (${desc.typeName}), got ${preview(json)}` }];
  }
  const violations: FieldViolation[] = [];
  for (const [key, value] of Object.entries(json)) {
    const field = desc.fields.find((f) => f.jsonName === key || f.name === key);
    if (!field) {
      violations.push({
        field: join(path, key),
        description: `unknown field: ${desc.typeName} has ${desc.fields.map((f) => f.jsonName).join(", ")}`,
      });
      continue;
    }
    const at = join(path, field.name);
    if (value === null) continue; // the default value, for every field
    if (field.fieldKind === "message" && !hasSpecialJson(field.message)) {
      violations.push(...jsonViolations(field.message, value, at));
    } else if (field.fieldKind === "list" && Array.isArray(value) && field.listKind === "message" && !hasSpecialJson(field.message)) {
      value.forEach((item, i) => violations.push(...jsonViolations(field.message, item, `${at}[${i}]`)));
    } else if (!readable(desc, key, value)) {
      violations.push({ field: at, description: `expected ${expected(field)}, got ${preview(value)}` });
    }
  }
  return violations;
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

/** Whether protobuf-es reads this one field (the whole value, nested messages included). */
function readable(desc: DescMessage, key: string, value: JsonValue): boolean {
  try {
    fromJson(desc, { [key]: value });
    return true;
  } catch {
    return false;
  }
}

/** Well-known types whose JSON is not an object of their fields. */
function hasSpecialJson(desc: DescMessage): boolean {
  return desc.typeName.startsWith("google.protobuf.") && desc.typeName !== "google.protobuf.Empty";
}

const wellKnown: Record<string, string> = {
  "google.protobuf.Struct": "a JSON object",
  "google.protobuf.Value": "any JSON value",
  "google.protobuf.ListValue": "a JSON array",
  "google.protobuf.Timestamp": 'an RFC 3339 timestamp such as "2026-01-31T12:00:00Z"',
  "google.protobuf.Duration": 'a duration such as "1.5s"',
  "google.protobuf.FieldMask": 'a string of comma-separated field paths such as "name,params"',
  "google.protobuf.Any": 'an object with "@type"',
};

function scalar(type: ScalarType): string {
  switch (type) {
    case ScalarType.STRING:
      return "a string";
    case ScalarType.BOOL:
      return "true or false";
    case ScalarType.BYTES:
      return "a base64 string";
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return "a number";
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return "a 64-bit integer (a number or a decimal string)";
    default:
      return "a 32-bit integer";
  }
}

function expected(field: DescField): string {
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar);
    case "enum":
      return `one of ${field.enum.values.map((v) => v.name).join(", ")}`;
    case "message":
      return wellKnown[field.message.typeName] ?? `a JSON object (${field.message.typeName})`;
    case "list":
      return field.listKind === "scalar"
        ? `a JSON array of ${scalar(field.scalar).replace(/^an? /, "")}s`
        : `a JSON array (of ${field.listKind === "enum" ? field.enum.typeName : field.message.typeName})`;
    case "map":
      return "a JSON object";
  }
}

function preview(value: JsonValue): string {
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
