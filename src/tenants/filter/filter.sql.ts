import { normalizeDomain } from "../domain-name.js";
/**
 * Compiles a tenant filter AST to a parameterized SQL boolean expression over
 * the `"Tenants"` table, for use inside `WHERE (...)`.
 *
 * Rules the generated SQL keeps:
 * - user input only ever travels in `params`, bound through knex-style `?`
 *   placeholders, each with an explicit cast; the SQL text contains no other
 *   `?` and no backslash, which knex would interpret;
 * - no expression can raise at run time, whatever the data: PostgreSQL does
 *   not promise to evaluate AND from left to right, so a type guard can't
 *   protect a cast. Only text and jsonb comparisons are used, and jsonb
 *   compares values of different types without error;
 * - every comparison is true or false, never NULL, so that `NOT` selects
 *   exactly the complement (a tenant without `params.plan` matches
 *   `NOT params.plan = "gold"`).
 */
import { FilterError, type Operator } from "./filter.lexer.js";
import { parseFilter, type ColumnField, type Comparison, type FilterNode, type Value } from "./filter.parser.js";

export interface CompiledFilter {
  sql: string;
  params: unknown[];
}

/** Returns null for an empty / whitespace-only filter. Throws FilterError on anything invalid. */
export function compileTenantFilter(filter: string): CompiledFilter | null {
  const ast = parseFilter(filter);
  if (ast === null) return null;
  const params: unknown[] = [];
  const sql = compileNode(ast, params);
  return { sql, params };
}

const SQL_OPERATORS: Record<Exclude<Operator, ":">, string> = {
  "=": "=",
  "!=": "<>",
  "<": "<",
  "<=": "<=",
  ">": ">",
  ">=": ">=",
};

const TIMESTAMP_COLUMNS: Record<Extract<ColumnField, `${string}_time`>, string> = {
  create_time: "created_at",
  update_time: "updated_at",
};

function compileNode(node: FilterNode, params: unknown[]): string {
  switch (node.kind) {
    case "and":
    case "or":
      return `(${node.children.map((child) => compileNode(child, params)).join(` ${node.kind.toUpperCase()} `)})`;
    case "not":
      return `NOT (${compileNode(node.child, params)})`;
    case "comparison":
      return compileComparison(node, params);
  }
}

function compileComparison(comparison: Comparison, params: unknown[]): string {
  const { field } = comparison;
  if (field.kind === "params") return compileParams(comparison, field.path, params);
  switch (field.name) {
    case "name":
      return compileName(comparison, params);
    case "domain":
      return compileDomain(comparison, params);
    case "create_time":
    case "update_time":
      return compileTimestamp(comparison, TIMESTAMP_COLUMNS[field.name], params);
    case "params_schema":
      return compileParamsSchema(comparison, params);
  }
}

/**
 * The binding as Tenant.params_schema shows it, `name@version`, or empty
 * for free-form tenants: `=` and `!=` compare it whole, `:` looks for a
 * fragment (`params_schema:"program@"` finds every version of program).
 */
function compileParamsSchema(comparison: Comparison, params: unknown[]): string {
  const { operator } = comparison;
  const binding = `coalesce(params_schema_name || '@' || params_schema_version, '')`;
  const placeholder = bind(params, stringValue(comparison), "text");
  if (operator === ":") return `strpos(${binding}, ${placeholder}) > 0`;
  if (operator === "=" || operator === "!=") return `${binding} ${SQL_OPERATORS[operator]} ${placeholder}`;
  throw wrongOperator(comparison, "params_schema");
}

/** Appends a bound value and returns its placeholder. */
function bind(params: unknown[], value: unknown, cast: string): string {
  params.push(value);
  return `?::${cast}`;
}

function fieldLabel(comparison: Comparison): string {
  const { field } = comparison;
  return field.kind === "column" ? field.name : "params";
}

function describeValue(value: Value): string {
  switch (value.kind) {
    case "string":
      return "a string";
    case "number":
      return `the number ${value.text}`;
    case "bool":
      return `the boolean ${value.value}`;
    case "any":
      return '"*"';
  }
}

function wrongValue(comparison: Comparison, expected: string): FilterError {
  const { value } = comparison;
  return new FilterError(
    `field "${fieldLabel(comparison)}" expects ${expected}, not ${describeValue(value)}, at position ${value.position}`,
    value.position,
  );
}

function wrongOperator(comparison: Comparison, what: string): FilterError {
  const position = comparison.operatorPosition;
  return new FilterError(
    `operator ${JSON.stringify(comparison.operator)} cannot be used on ${what} at position ${position}`,
    position,
  );
}

function misplacedStar(value: Value): FilterError {
  return new FilterError(`"*" is only allowed in "params.<key>:*", at position ${value.position}`, value.position);
}

function stringValue(comparison: Comparison): string {
  const { value } = comparison;
  if (value.kind === "any") throw misplacedStar(value);
  if (value.kind !== "string") throw wrongValue(comparison, 'a string value (quote it: "...")');
  return value.value;
}

/**
 * `=` and `!=` ignore case, as names are unique regardless of case; ordering
 * is plain. `:` uses strpos rather than ILIKE so that "%" and "_" in the value
 * need no escaping (and no backslash appears in the SQL).
 */
function compileName(comparison: Comparison, params: unknown[]): string {
  const placeholder = bind(params, stringValue(comparison), "text");
  const { operator } = comparison;
  if (operator === ":") return `strpos(lower(name), lower(${placeholder})) > 0`;
  if (operator === "=" || operator === "!=") return `lower(name) ${SQL_OPERATORS[operator]} lower(${placeholder})`;
  return `name ${SQL_OPERATORS[operator]} ${placeholder}`;
}

/**
 * Domains are stored normalized, so a whole domain compared with `=` or `!=`
 * is normalized the same way (`Bücher.example.` finds `xn--bcher-kva.example`);
 * other values (fragments for `:`, bounds for ordering) are only lower-cased.
 */
function compileDomain(comparison: Comparison, params: unknown[]): string {
  const { operator } = comparison;
  const raw = stringValue(comparison);
  const normalized = operator === "=" || operator === "!=" ? normalizeDomain(raw) : undefined;
  const placeholder = bind(params, normalized?.ok ? normalized.domain : raw.toLowerCase(), "text");
  if (operator === ":") return `strpos(domain, ${placeholder}) > 0`;
  return `domain ${SQL_OPERATORS[operator]} ${placeholder}`;
}

function compileTimestamp(comparison: Comparison, column: string, params: unknown[]): string {
  const { operator, value } = comparison;
  if (operator === ":") throw wrongOperator(comparison, "a timestamp");
  const text = stringValue(comparison);
  if (!isRfc3339(text)) {
    throw new FilterError(
      `invalid timestamp ${JSON.stringify(text)} at position ${value.position} (expected RFC 3339, such as "2026-01-01T00:00:00Z")`,
      value.position,
    );
  }
  return `${column} ${SQL_OPERATORS[operator]} ${bind(params, text, "timestamptz")}`;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * Strict RFC 3339 date-time. Date.parse alone is too lenient (it reads
 * "2026-02-30" as March 2nd) while PostgreSQL raises on it, which would turn a
 * bad filter into a server error; so every field is range-checked. Offsets
 * are limited to ±15:59, PostgreSQL's limit (real ones are within
 * -12:00..+14:00). Leap seconds (":60") are rejected, as by Date.parse.
 */
export function isRfc3339(text: string): boolean {
  const match = RFC3339.exec(text);
  if (!match) return false;
  const [year, month, day, hour, minute, second, offsetHour, offsetMinute] = match
    .slice(1)
    .map((digits) => Number(digits ?? 0)) as [number, number, number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return (
    year >= 1 &&
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysInMonth &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offsetHour <= 15 &&
    offsetMinute <= 59 &&
    !Number.isNaN(Date.parse(text))
  );
}

/**
 * `params.<path>` compares the JSON value at the path, and only matches a
 * value of the same JSON type as the filter's value: `params.seats > 5`
 * matches `{"seats": 10}` but neither `{"seats": "10"}` nor a tenant without
 * `seats`. Accordingly `!=` means "has this type and a different value"; use
 * `NOT params.x = v` for "anything but v, including missing".
 */
function compileParams(comparison: Comparison, path: string[], params: unknown[]): string {
  const { operator, value } = comparison;
  // Each use of the path needs its own placeholder; bind() appends to params,
  // so the fragments below are built in the order they appear in the SQL.
  const pathParam = () => bind(params, path, "text[]");
  const jsonAt = () => `(params #> ${pathParam()})`;
  const textAt = () => `(params #>> ${pathParam()})`;
  const typeIs = (type: string) => `jsonb_typeof(params #> ${pathParam()}) = '${type}'`;
  switch (value.kind) {
    case "any":
      if (operator !== ":") throw misplacedStar(value);
      // True for a JSON null as well: the key is present.
      return `${jsonAt()} IS NOT NULL`;
    case "string": {
      const guard = typeIs("string");
      const text = textAt();
      const test =
        operator === ":"
          ? `strpos(lower(${text}), lower(${bind(params, value.value, "text")})) > 0`
          : `${text} ${SQL_OPERATORS[operator]} ${bind(params, value.value, "text")}`;
      return notNull(`${guard} AND ${test}`);
    }
    case "number": {
      const guard = typeIs("number");
      const test = `${jsonAt()} ${jsonOperator(operator)} ${bind(params, jsonNumber(value), "jsonb")}`;
      return notNull(`${guard} AND ${test}`);
    }
    case "bool": {
      if (operator !== "=" && operator !== "!=" && operator !== ":") throw wrongOperator(comparison, "a boolean");
      const guard = typeIs("boolean");
      const test = `${jsonAt()} ${jsonOperator(operator)} ${bind(params, String(value.value), "jsonb")}`;
      return notNull(`${guard} AND ${test}`);
    }
  }
}

/** On a number or a boolean, "has" (`:`) can only mean equality. */
function jsonOperator(operator: Operator): string {
  return operator === ":" ? "=" : SQL_OPERATORS[operator];
}

/** A missing key (or a NULL params column) makes the comparison NULL; count it as false. */
function notNull(condition: string): string {
  return `coalesce(${condition}, false)`;
}

/** PostgreSQL rejects numeric exponents beyond ±1000 ("1e5000"::jsonb raises). */
const MAX_EXPONENT = 1000;

/**
 * The number as JSON text for a `?::jsonb` placeholder. The filter's digits
 * are kept (rather than going through a JS double) so that large integers
 * compare exactly; only leading zeros, which JSON forbids, are removed.
 */
function jsonNumber(value: Extract<Value, { kind: "number" }>): string {
  const exponent = /[eE]([+-]?\d+)$/.exec(value.text)?.[1];
  if (exponent !== undefined && Math.abs(Number(exponent)) > MAX_EXPONENT) {
    throw new FilterError(`number ${value.text} is out of range at position ${value.position}`, value.position);
  }
  return value.text.replace(/^(-?)0+(?=\d)/, "$1");
}
