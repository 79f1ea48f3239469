import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Violations } from "../common/errors.js";

export type TenantMaskPath =
  | { field: "name" | "domain" | "params" | "state" | "params_schema" }
  /** One nested key of params: `params.a.b` is keys ["a", "b"]. */
  | { field: "params.key"; keys: string[] };

const outputOnly = new Set(["id", "create_time", "update_time", "etag"]);

/**
 * Parses `update_mask.paths`. Keys under `params` are separated by dots; a key
 * that contains a dot or a backtick is quoted with backticks, as in AIP-161:
 * params.`example.com`.limit
 */
export function parseTenantMask(paths: readonly string[], violations: Violations): TenantMaskPath[] {
  const parsed: TenantMaskPath[] = [];
  paths.forEach((path, i) => {
    const field = `update_mask.paths[${i}]`;
    const segments = splitPath(path);
    if (segments === undefined) {
      violations.add(field, `"${path}" is not a valid path (unbalanced backticks or an empty key)`);
      return;
    }
    const [head, ...keys] = segments;
    if ((head === "name" || head === "domain" || head === "params" || head === "state" || head === "params_schema") && keys.length === 0) {
      parsed.push({ field: head });
    } else if (head === "params") {
      parsed.push({ field: "params.key", keys });
    } else if (head !== undefined && outputOnly.has(head) && keys.length === 0) {
      violations.add(field, `"${head}" is output only and cannot be updated`);
    } else {
      violations.add(field, `unknown path "${path}": expected name, domain, state, params_schema, params or params.<key>[.<key>...]`);
    }
  });
  return parsed;
}

function splitPath(path: string): string[] | undefined {
  const segments: string[] = [];
  let current = "";
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < path.length; i++) {
    const ch = path[i]!;
    if (quoted) {
      if (ch === "`" && path[i + 1] === "`") {
        current += "`";
        i++;
      } else if (ch === "`") {
        quoted = false;
      } else {
        current += ch;
      }
    } else if (ch === "`") {
      quoted = true;
      wasQuoted = true;
    } else if (ch === ".") {
      if (current === "" && !wasQuoted) return undefined;
      segments.push(current);
      current = "";
      wasQuoted = false;
    } else {
      current += ch;
    }
  }
  if (quoted || (current === "" && !wasQuoted)) return undefined;
  segments.push(current);
  return segments;
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Sets `keys` in `target` to the value at the same keys in `source`, creating
 * objects on the way (replacing non-objects), or removes it from `target`
 * when `source` does not have it. Returns the new params; `target` is not
 * modified.
 */
export function applyParamsKey(target: JsonObject, keys: readonly string[], source: JsonObject | undefined): JsonObject {
  let value: JsonValue | undefined = source;
  for (const key of keys) value = isObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
  return value === undefined ? removeKey(target, keys) : setKey(target, keys, value);
}

function setKey(target: JsonObject, keys: readonly string[], value: JsonValue): JsonObject {
  const [key, ...rest] = keys;
  if (key === undefined) return target;
  const child = target[key];
  return { ...target, [key]: rest.length === 0 ? value : setKey(isObject(child) ? child : {}, rest, value) };
}

function removeKey(target: JsonObject, keys: readonly string[]): JsonObject {
  const [key, ...rest] = keys;
  if (key === undefined || !Object.hasOwn(target, key)) return target;
  if (rest.length === 0) {
    const { [key]: _removed, ...others } = target;
    return others;
  }
  const child = target[key];
  return isObject(child) ? { ...target, [key]: removeKey(child, rest) } : target;
}
