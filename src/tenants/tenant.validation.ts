import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Violations } from "../common/errors.js";
import { normalizeDomain } from "./domain-name.js";

export const NAME_MAX_CHARS = 255;
export const PARAMS_MAX_BYTES = 64 * 1024;
/** Deeper objects are refused: PostgreSQL and JSON parsers recurse on depth. */
export const PARAMS_MAX_DEPTH = 32;

/**
 * Whether a (trimmed) name given to a lookup could belong to some tenant; one
 * that could not matches none, and is not sent to the database (PostgreSQL
 * text cannot hold NUL).
 */
export function couldBeStoredName(name: string): boolean {
  return [...name].length <= NAME_MAX_CHARS && !name.includes("\u0000");
}

/** Trims a name and reports why it is not acceptable, if it is not. */
export function checkName(raw: string, field: string, violations: Violations): string {
  const name = raw.trim();
  const length = [...name].length;
  if (length === 0) violations.add(field, "must not be empty");
  else if (length > NAME_MAX_CHARS) violations.add(field, `must be at most ${NAME_MAX_CHARS} characters, got ${length}`);
  else if (/\p{Cc}/u.test(name)) violations.add(field, "must not contain control characters");
  else if (/[\uD800-\uDFFF]/.test(name.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ""))) {
    violations.add(field, "must be valid Unicode");
  }
  return name;
}

export function checkDomain(raw: string, field: string, violations: Violations): string {
  const result = normalizeDomain(raw);
  if (!result.ok) {
    violations.add(field, result.reason);
    return raw;
  }
  return result.domain;
}

/**
 * Checks what PostgreSQL's jsonb would refuse or what would make the row
 * unreasonably large, so that such input is INVALID_ARGUMENT, never a
 * database error: non-finite numbers (a binary Struct can carry NaN), NUL
 * characters (jsonb cannot store U+0000), excessive depth and size.
 */
export function checkParams(params: JsonObject, field: string, violations: Violations): void {
  const problem = findJsonProblem(params, field, 1);
  if (problem) {
    violations.add(problem.field, problem.description);
    return;
  }
  const bytes = Buffer.byteLength(JSON.stringify(params));
  if (bytes > PARAMS_MAX_BYTES) violations.add(field, `must be at most ${PARAMS_MAX_BYTES} bytes as JSON, got ${bytes}`);
}

function findJsonProblem(
  value: JsonValue,
  path: string,
  depth: number,
): { field: string; description: string } | undefined {
  if (typeof value === "number") {
    return Number.isFinite(value) ? undefined : { field: path, description: "numbers must be finite" };
  }
  if (typeof value === "string") {
    return value.includes("\u0000") ? { field: path, description: "strings must not contain U+0000" } : undefined;
  }
  if (value === null || typeof value === "boolean") return undefined;
  if (depth > PARAMS_MAX_DEPTH) return { field: path, description: `must be nested at most ${PARAMS_MAX_DEPTH} levels deep` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = findJsonProblem(value[i]!, `${path}[${i}]`, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  for (const [key, child] of Object.entries(value)) {
    if (key.includes("\u0000")) return { field: path, description: "keys must not contain U+0000" };
    const problem = findJsonProblem(child, `${path}.${key}`, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}
