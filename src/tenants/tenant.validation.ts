import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Violations } from "../common/errors.js";
import { keySegment, PROTO_KEY, PROTO_KEY_RULE } from "../common/json-keys.js";
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
 * Checks that params can be stored exactly, so that what a client writes is
 * what every read returns, and that anything else is INVALID_ARGUMENT naming
 * the value, never a database error or a silent change: numbers must be
 * finite (a binary Struct can carry NaN; JSON's 1e400 reads as Infinity) and
 * not -0 (jsonb has no negative zero: it would read back as 0); strings and
 * keys must be valid Unicode (a lone surrogate, which JSON's \u escapes can
 * write, is refused by jsonb) without U+0000 (which jsonb cannot hold); no
 * key may be `__proto__` (see json-keys.ts; the request decoders refuse it
 * first, as they are the ones that would drop it); depth and size are
 * bounded.
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

/** A lone surrogate: with the u flag, a well-formed pair is one code point, not Cs. */
const LONE_SURROGATE = /\p{Cs}/u;

function findJsonProblem(
  value: JsonValue,
  path: string,
  depth: number,
): { field: string; description: string } | undefined {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return { field: path, description: "numbers must be finite" };
    if (Object.is(value, -0)) {
      return { field: path, description: "-0 (or a negative number too small for a double) cannot be stored, it would read back as 0: send 0" };
    }
    return undefined;
  }
  if (typeof value === "string") {
    if (value.includes("\u0000")) return { field: path, description: "strings must not contain U+0000" };
    if (LONE_SURROGATE.test(value)) return { field: path, description: "strings must be valid Unicode: a lone surrogate cannot be stored" };
    return undefined;
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
    if (key === PROTO_KEY) return { field: `${path}.${PROTO_KEY}`, description: PROTO_KEY_RULE };
    if (key.includes("\u0000")) return { field: path, description: "keys must not contain U+0000" };
    if (LONE_SURROGATE.test(key)) return { field: path, description: "keys must be valid Unicode: a lone surrogate cannot be stored" };
    const problem = findJsonProblem(child, `${path}.${keySegment(key)}`, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}
