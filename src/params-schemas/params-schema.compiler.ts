import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Ajv2020, MissingRefError, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import formats from "ajv-formats";

/** Larger documents are refused at registration. */
export const SCHEMA_MAX_BYTES = 256 * 1024;
/** Deeper documents are refused before ajv (which recurses on depth) sees them. */
export const SCHEMA_MAX_DEPTH = 64;
export const DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema";

/**
 * The ajv options every params schema is compiled with (the property test
 * compiles its reference with these too):
 * - draft 2020-12 (Ajv2020), with ajv-formats' formats;
 * - `useDefaults`: a write stores the defaults the schema declares;
 * - `allErrors`: a refused write names every problem, not only the first;
 * - `verbose`: errors carry the offending value and its schema, so that
 *   descriptions can quote them;
 * - strict about the schema itself (a misspelt keyword such as `minimun`
 *   is refused rather than silently ignored), but not about type
 *   annotations, tuples or `required` properties that JSON Schema allows;
 * - `addUsedSchema: false`: documents are never registered in the shared
 *   instance by their `$id`, so two versions can share one;
 * - no coercion, no removal of additional properties: what is stored is
 *   what was sent, plus defaults.
 */
export const AJV_OPTIONS = {
  allErrors: true,
  verbose: true,
  useDefaults: true,
  strict: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allowUnionTypes: true,
  addUsedSchema: false,
  logger: false,
} as const;

export function createAjv(): Ajv2020 {
  const ajv = new Ajv2020(AJV_OPTIONS);
  formats.default(ajv);
  return ajv;
}

/** One problem found, with its path into the validated value (`.theme.color`, `[2]`, "" for the value itself). */
export interface SchemaViolation {
  path: string;
  description: string;
}

export class SchemaCompileError extends Error {
  constructor(readonly violations: SchemaViolation[]) {
    super(violations.map((v) => `schema${v.path}: ${v.description}`).join("; "));
  }
}

/** A compiled params schema: fills defaults into params, then validates them. */
export interface CompiledParamsSchema {
  /**
   * The params with the schema's defaults filled in, and what the schema
   * refuses in them. `inPlace` when the caller owns `params` and nothing
   * else shares any part of them (a request's own message): the defaults
   * are then written into them instead of into a copy.
   */
  apply(params: JsonObject, options?: { inPlace?: boolean }): { params: JsonObject; violations: SchemaViolation[] };
  /** Whether the schema declares defaults (which may make valid params larger). */
  readonly fillsDefaults: boolean;
}

/**
 * Compiles documents for validation. One ajv instance per process (creating
 * one costs more than compiling a schema); each document is removed from the
 * instance's cache after compiling, so the instance keeps nothing of it but
 * the returned function.
 */
export class ParamsSchemaCompiler {
  private readonly ajv = createAjv();

  /** Throws SchemaCompileError with every reason the document cannot be used. */
  compile(document: JsonObject): CompiledParamsSchema {
    const problems = documentProblems(document);
    if (problems.length > 0) throw new SchemaCompileError(problems);
    if (!this.ajv.validateSchema(document)) {
      throw new SchemaCompileError(metaSchemaViolations(this.ajv.errors ?? [], document));
    }
    let validate: ValidateFunction;
    try {
      validate = this.ajv.compile(document);
    } catch (error) {
      throw new SchemaCompileError([compileViolation(error)]);
    } finally {
      this.ajv.removeSchema(document);
    }
    // ajv writes defaults into the data it validates: the caller's params
    // are copied first, unless the schema declares none or the caller says
    // they are its own (a copy costs twice the validation).
    const fills = declaresDefaults(document);
    return {
      fillsDefaults: fills,
      apply(params, options) {
        const data = fills && !options?.inPlace ? structuredClone(params) : params;
        if (validate(data)) return { params: data, violations: [] };
        return { params: data, violations: describeErrors(validate.errors ?? [], data) };
      },
    };
  }
}

/** Whether a `default` keyword appears anywhere (a property named "default" counts too: a copy too many is harmless). */
function declaresDefaults(value: JsonValue): boolean {
  if (value === null || typeof value !== "object") return false;
  if (Array.isArray(value)) return value.some(declaresDefaults);
  return Object.hasOwn(value, "default") || Object.values(value).some(declaresDefaults);
}

/** What is refused before ajv looks at the document: size, depth, numbers JSON cannot hold, other dialects. */
function documentProblems(document: JsonObject): SchemaViolation[] {
  const problems: SchemaViolation[] = [];
  const deep = findDepthOrNumberProblem(document, "", 1);
  if (deep) return [deep];
  const bytes = Buffer.byteLength(JSON.stringify(document));
  if (bytes > SCHEMA_MAX_BYTES) problems.push({ path: "", description: `must be at most ${SCHEMA_MAX_BYTES} bytes as JSON (256 KiB), got ${bytes}` });
  const dialect = document.$schema;
  if (dialect !== undefined && dialect !== DRAFT_2020_12 && dialect !== `${DRAFT_2020_12}#`) {
    problems.push({ path: ".$schema", description: `must be "${DRAFT_2020_12}" (or absent): only JSON Schema draft 2020-12 is supported` });
  }
  return problems;
}

function findDepthOrNumberProblem(value: JsonValue, path: string, depth: number): SchemaViolation | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : { path, description: "numbers must be finite" };
  // Defaults end up in params, which cannot hold U+0000 (PostgreSQL's jsonb).
  if (typeof value === "string") return value.includes("\u0000") ? { path, description: "strings must not contain U+0000" } : undefined;
  if (value === null || typeof value !== "object") return undefined;
  if (depth > SCHEMA_MAX_DEPTH) return { path, description: `must be nested at most ${SCHEMA_MAX_DEPTH} levels deep` };
  const entries: Array<[string, JsonValue]> = Array.isArray(value) ? value.map((v, i) => [`[${i}]`, v]) : Object.entries(value).map(([k, v]) => [keySegment(k), v]);
  for (const [segment, child] of entries) {
    if (segment.includes("\u0000")) return { path, description: "keys must not contain U+0000" };
    const problem = findDepthOrNumberProblem(child, path + segment, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

function compileViolation(error: unknown): SchemaViolation {
  if (error instanceof MissingRefError) {
    return {
      path: "",
      description:
        `$ref "${error.missingRef}" does not resolve inside the document: references to other documents ` +
        "are not allowed (copy the referenced schema under $defs and refer to it as #/$defs/...)",
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { path: "", description: `does not compile: ${message.replace(/^strict mode: /, "")}` };
}

/** The meta-schema's complaints, at their place in the document; ajv's anyOf noise about alternatives left out. */
function metaSchemaViolations(errors: ErrorObject[], document: JsonObject): SchemaViolation[] {
  return describeErrors(errors, document).map((v) => ({ path: v.path, description: `is not a valid JSON Schema: ${v.description}` }));
}

// ---------------------------------------------------------------- paths

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/**
 * `.key` for an object key: keys of letters, digits, `_` and `-` as they
 * are, any other in backticks (doubled inside), as in update masks and
 * filters, so that a violation's field can be pasted into either.
 */
export function keySegment(key: string): string {
  return PLAIN_KEY.test(key) ? `.${key}` : `.\`${key.replaceAll("`", "``")}\``;
}

/** A JSON Pointer (ajv's instancePath) as a path: `/courses/2/code` is `.courses[2].code` when courses is an array. */
function pointerToPath(pointer: string, root: unknown): string {
  if (pointer === "") return "";
  let path = "";
  let at: unknown = root;
  for (const raw of pointer.slice(1).split("/")) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(at)) {
      path += `[${token}]`;
      at = at[Number(token)];
    } else {
      path += keySegment(token);
      at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[token] : undefined;
    }
  }
  return path;
}

// ---------------------------------------------------------------- descriptions

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  integer: "an integer",
  boolean: "true or false",
  object: "an object",
  array: "an array",
  null: "null",
};

const FORMAT_WORDS: Record<string, string> = {
  "date-time": 'a date and time as in RFC 3339, such as "2026-01-31T09:30:00Z"',
  date: 'a date such as "2026-01-31"',
  time: 'a time with its offset such as "09:30:00Z"',
  duration: 'an ISO 8601 duration such as "P1D" or "PT30M"',
  email: "an email address",
  hostname: "a host name",
  ipv4: "an IPv4 address",
  ipv6: "an IPv6 address",
  uri: "an absolute URI, such as https://example.com/logo.png",
  "uri-reference": "a URI or a relative reference",
  "uri-template": "a URI template (RFC 6570)",
  uuid: "a UUID",
  regex: "a regular expression",
  "json-pointer": "a JSON Pointer",
  "relative-json-pointer": "a relative JSON Pointer",
};

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `the string ${quote(value)}`;
  if (typeof value === "number") return `the number ${value}`;
  return `the boolean ${String(value)}`;
}

function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function got(error: ErrorObject): string {
  const data = error.data;
  if (typeof data === "string") return `; got ${quote(data)}`;
  if (typeof data === "number" || typeof data === "boolean" || data === null) return `; got ${JSON.stringify(data)}`;
  return "";
}

function listOf(values: readonly unknown[], max = 10): string {
  const shown = values.slice(0, max).map(quote).join(", ");
  return values.length > max ? `${shown}, ... (${values.length} in all)` : shown;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The schema's own words for the value, when its author gave some. */
function schemaNote(schema: unknown): string {
  if (schema === null || typeof schema !== "object") return "";
  const { description, title } = schema as { description?: unknown; title?: unknown };
  const note = typeof description === "string" ? description : typeof title === "string" ? title : "";
  return note && note.length <= 200 ? ` (${note})` : "";
}

/** What one ajv error means, in words, and where: the field it concerns may be a child of ajv's instancePath. */
function describeOne(error: ErrorObject, root: unknown): SchemaViolation {
  const at = pointerToPath(error.instancePath, root);
  const p = error.params as Record<string, unknown>;
  const parent = error.parentSchema as Record<string, unknown> | undefined;
  const childSchema = (key: string) => (parent?.properties as Record<string, unknown> | undefined)?.[key];
  switch (error.keyword) {
    case "type": {
      const types = String(p.type).split(",");
      return { path: at, description: `must be ${types.map((t) => TYPE_WORDS[t] ?? t).join(" or ")}${schemaNote(parent)}, not ${typeOf(error.data)}` };
    }
    case "required":
      return { path: at + keySegment(String(p.missingProperty)), description: `is required${schemaNote(childSchema(String(p.missingProperty)))}` };
    case "dependentRequired":
      return { path: at + keySegment(String(p.missingProperty)), description: `is required when ${quote(p.property)} is set` };
    case "additionalProperties": {
      const allowed = Object.keys((parent?.properties as object | undefined) ?? {});
      return {
        path: at + keySegment(String(p.additionalProperty)),
        description: allowed.length > 0 ? `is not allowed here: the schema allows only ${listOf(allowed, 20)}` : "is not allowed here",
      };
    }
    case "unevaluatedProperties":
      return { path: at + keySegment(String(p.unevaluatedProperty)), description: "is not allowed here (the schema does not define it)" };
    case "enum":
      return { path: at, description: `must be one of ${listOf(p.allowedValues as unknown[])}${schemaNote(parent)}${got(error)}` };
    case "const":
      return { path: at, description: `must be ${quote(p.allowedValue)}${got(error)}` };
    case "pattern":
      return { path: at, description: `must match the pattern ${String(p.pattern)}${schemaNote(parent)}${got(error)}` };
    case "format": {
      const format = String(p.format);
      return { path: at, description: `must be ${FORMAT_WORDS[format] ?? `a valid ${format}`}${schemaNote(parent)}${got(error)}` };
    }
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum": {
      const words: Record<string, string> = { ">=": "at least", "<=": "at most", ">": "greater than", "<": "less than" };
      return { path: at, description: `must be ${words[String(p.comparison)]} ${String(p.limit)}${schemaNote(parent)}${got(error)}` };
    }
    case "multipleOf":
      return { path: at, description: `must be a multiple of ${String(p.multipleOf)}${got(error)}` };
    case "minLength":
    case "maxLength":
      return {
        path: at,
        description: `must be ${error.keyword === "minLength" ? "at least" : "at most"} ${plural(Number(p.limit), "character")} long${schemaNote(parent)}`,
      };
    case "minItems":
    case "maxItems":
    case "items":
      return { path: at, description: `must have ${error.keyword === "minItems" ? "at least" : "at most"} ${plural(Number(p.limit), "item")}` };
    case "minProperties":
    case "maxProperties":
      return { path: at, description: `must have ${error.keyword === "minProperties" ? "at least" : "at most"} ${plural(Number(p.limit), "key")}` };
    case "uniqueItems":
      return { path: at, description: `must not contain duplicates (items ${String(p.j)} and ${String(p.i)} are equal)` };
    case "contains": {
      const min = p.minContains as number | undefined;
      const max = p.maxContains as number | undefined;
      const bound = max !== undefined ? `at most ${max}` : `at least ${min ?? 1}`;
      return { path: at, description: `must contain ${bound} item(s) that match the schema under "contains"` };
    }
    case "not":
      return { path: at, description: `must not match the schema under "not"${schemaNote(parent)}` };
    case "false schema":
      return { path: at, description: "is not allowed here" };
    default:
      return { path: at, description: error.message ?? `is refused by the schema keyword "${error.keyword}"` };
  }
}

/**
 * Turns ajv's errors into one violation per problem. The errors of the
 * alternatives of a failed oneOf/anyOf (and of a failed propertyNames) are
 * folded into its own violation, which lists them, instead of each being
 * reported as if it alone were required; the `if` error that repeats a
 * failed `then`/`else` is dropped.
 */
export function describeErrors(errors: readonly ErrorObject[], root: unknown): SchemaViolation[] {
  const folding = errors.filter((e) => e.keyword === "oneOf" || e.keyword === "anyOf" || e.keyword === "propertyNames");
  const owner = (error: ErrorObject) => folding.find((f) => f !== error && error.schemaPath.startsWith(`${f.schemaPath}/`));
  const out: SchemaViolation[] = [];
  const seen = new Set<string>();
  const push = (v: SchemaViolation) => {
    const key = `${v.path}\u0000${v.description}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(v);
  };
  for (const error of errors) {
    if (error.keyword === "if" || owner(error)) continue;
    if (!folding.includes(error)) {
      push(describeOne(error, root));
      continue;
    }
    push(describeFolding(error, errors.filter((e) => owner(e) === error), root));
  }
  return out;
}

function describeFolding(error: ErrorObject, inner: ErrorObject[], root: unknown): SchemaViolation {
  const at = pointerToPath(error.instancePath, root);
  const p = error.params as Record<string, unknown>;
  if (error.keyword === "propertyNames") {
    const reasons = inner.filter((e) => e.keyword !== "propertyNames").map((e) => describeOne(e, root).description);
    return { path: at + keySegment(String(p.propertyName)), description: `is not an allowed key${reasons.length ? `: ${reasons.join("; ")}` : ""}` };
  }
  const alternatives = ((error.schema as unknown[] | undefined) ?? []).length;
  const passing = p.passingSchemas as number[] | null | undefined;
  if (error.keyword === "oneOf" && Array.isArray(passing)) {
    return { path: at, description: `must match exactly one of the ${alternatives} alternatives of the schema, but matches ${passing.map((i) => i + 1).join(" and ")}` };
  }
  const prefix = `${error.schemaPath}/`;
  const byBranch = new Map<number, string[]>();
  for (const e of inner) {
    const branch = Number(e.schemaPath.slice(prefix.length).split("/")[0]);
    const v = describeOne(e, root);
    const relative = v.path.startsWith(at) ? v.path.slice(at.length) : v.path;
    byBranch.set(branch, [...(byBranch.get(branch) ?? []), relative ? `${relative.replace(/^\./, "")} ${v.description}` : v.description]);
  }
  const reasons = [...byBranch.entries()].sort(([a], [b]) => a - b).map(([branch, list]) => `(${branch + 1}) ${list.join(", ")}`);
  const what = error.keyword === "oneOf" ? `must match exactly one of the ${alternatives} alternatives of the schema` : `must match at least one of the ${alternatives} alternatives of the schema`;
  return { path: at, description: `${what}, and matches none${reasons.length ? `: ${reasons.join("; ")}` : ""}` };
}
