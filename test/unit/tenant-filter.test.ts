import { describe, it, expect } from "vitest";
import { compileTenantFilter, FilterError, type CompiledFilter } from "../../src/tenants/filter/index.js";

/** Compiles a filter that must be valid. */
function compile(filter: string): CompiledFilter {
  const compiled = compileTenantFilter(filter);
  if (compiled === null) throw new Error(`filter ${JSON.stringify(filter)} compiled to null`);
  return compiled;
}

/** The FilterError a filter must raise. */
function failure(filter: string): FilterError {
  try {
    compileTenantFilter(filter);
  } catch (error) {
    if (error instanceof FilterError) return error;
    throw error;
  }
  throw new Error(`filter ${JSON.stringify(filter)} was accepted`);
}

function expectError(filter: string, position: number, message: RegExp): void {
  const error = failure(filter);
  expect(error.position).toBe(position);
  expect(error.message).toMatch(message);
  expect(error.message).toContain(`position ${position}`);
}

/** Fragments reused by the expected SQL of params comparisons. */
const typeIs = (type: string) => `jsonb_typeof(params #> ?::text[]) = '${type}'`;
const JSON_AT = "(params #> ?::text[])";
const TEXT_AT = "(params #>> ?::text[])";

describe("compileTenantFilter: empty filters", () => {
  it("returns null for an empty or whitespace-only filter", () => {
    expect(compileTenantFilter("")).toBeNull();
    expect(compileTenantFilter("  \t\n ")).toBeNull();
  });
});

describe("compileTenantFilter: name", () => {
  it("compares = and != without regard to case", () => {
    expect(compile('name = "Acme"')).toEqual({ sql: "lower(name) = lower(?::text)", params: ["Acme"] });
    expect(compile("name != 'Acme'")).toEqual({ sql: "lower(name) <> lower(?::text)", params: ["Acme"] });
  });

  it("orders with plain comparisons", () => {
    expect(compile('name < "m"')).toEqual({ sql: "name < ?::text", params: ["m"] });
    expect(compile('name <= "m"').sql).toBe("name <= ?::text");
    expect(compile('name > "m"').sql).toBe("name > ?::text");
    expect(compile('name >= "m"').sql).toBe("name >= ?::text");
  });

  it("makes : a case-insensitive substring test, binding LIKE wildcards verbatim", () => {
    expect(compile('name:"50%_off"')).toEqual({
      sql: "strpos(lower(name), lower(?::text)) > 0",
      params: ["50%_off"],
    });
  });

  it("accepts a bare word as a string", () => {
    expect(compile("name:acme").params).toEqual(["acme"]);
  });

  it("decodes escapes in strings", () => {
    expect(compile(String.raw`name = "a\"b\\c\nd\te"`).params).toEqual(['a"b\\c\nd\te']);
    expect(compile(String.raw`name = 'O\'Brien'`).params).toEqual(["O'Brien"]);
    expect(compile(`name = 'say "hi"'`).params).toEqual(['say "hi"']);
  });
});

describe("compileTenantFilter: domain", () => {
  it("lower-cases the value, as domains are stored lower-case", () => {
    expect(compile('domain = "Example.COM"')).toEqual({ sql: "domain = ?::text", params: ["example.com"] });
    expect(compile('domain != "A.io"')).toEqual({ sql: "domain <> ?::text", params: ["a.io"] });
    expect(compile('domain >= "B"')).toEqual({ sql: "domain >= ?::text", params: ["b"] });
  });

  it("makes : a substring test", () => {
    expect(compile("domain:Example.com")).toEqual({ sql: "strpos(domain, ?::text) > 0", params: ["example.com"] });
  });
});

describe("compileTenantFilter: params_schema", () => {
  const BINDING = "coalesce(params_schema_name || '@' || params_schema_version, '')";
  it("compares the binding text whole with = and !=, empty for free-form tenants", () => {
    expect(compile('params_schema = "program@3"')).toEqual({ sql: `${BINDING} = ?::text`, params: ["program@3"] });
    expect(compile('params_schema != ""')).toEqual({ sql: `${BINDING} <> ?::text`, params: [""] });
  });

  it("makes : a substring test (every version of a name)", () => {
    expect(compile('params_schema:"program@"')).toEqual({ sql: `strpos(${BINDING}, ?::text) > 0`, params: ["program@"] });
  });

  it("refuses ordering operators and non-string values", () => {
    expectError('params_schema < "a"', 15, /cannot be used on params_schema/);
    expectError("params_schema = 3", 17, /expects a string value/);
  });
});

describe("compileTenantFilter: timestamps", () => {
  it("maps create_time and update_time to their columns", () => {
    expect(compile('create_time > "2026-01-01T00:00:00Z"')).toEqual({
      sql: "created_at > ?::timestamptz",
      params: ["2026-01-01T00:00:00Z"],
    });
    expect(compile('update_time <= "2026-01-01T00:00:00.123456+02:00"')).toEqual({
      sql: "updated_at <= ?::timestamptz",
      params: ["2026-01-01T00:00:00.123456+02:00"],
    });
  });

  it("allows all six comparison operators", () => {
    const operators = { "=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=" };
    for (const [operator, sql] of Object.entries(operators)) {
      expect(compile(`create_time ${operator} "2024-02-29T23:59:59-05:00"`).sql).toBe(`created_at ${sql} ?::timestamptz`);
    }
  });

  it("rejects invalid timestamps at the value's position", () => {
    expectError('create_time > "2026-01-01"', 15, /invalid timestamp "2026-01-01"/);
    expectError('create_time > "2026-02-30T00:00:00Z"', 15, /invalid timestamp/);
    expectError('create_time > "2025-02-29T00:00:00Z"', 15, /invalid timestamp/);
    expectError('create_time > "2026-01-01T24:00:00Z"', 15, /invalid timestamp/);
    expectError('create_time > "2026-01-01T00:00:00+16:00"', 15, /invalid timestamp/);
    expectError('create_time > "0000-01-01T00:00:00Z"', 15, /invalid timestamp/);
    expectError('update_time < "yesterday"', 15, /invalid timestamp/);
  });

  it("rejects : and non-string values", () => {
    expectError('create_time:"2026-01-01T00:00:00Z"', 12, /operator ":" cannot be used on a timestamp/);
    expectError("create_time > 2026", 15, /expects a string value/);
  });
});

describe("compileTenantFilter: params", () => {
  it("compares strings as JSON strings only, binding the path as a text array", () => {
    expect(compile('params.plan = "gold"')).toEqual({
      sql: `coalesce(${typeIs("string")} AND ${TEXT_AT} = ?::text, false)`,
      params: [["plan"], ["plan"], "gold"],
    });
    expect(compile('params.plan < "m"').sql).toBe(`coalesce(${typeIs("string")} AND ${TEXT_AT} < ?::text, false)`);
  });

  it("makes != mean 'a string with another value'", () => {
    expect(compile('params.plan != "gold"').sql).toBe(`coalesce(${typeIs("string")} AND ${TEXT_AT} <> ?::text, false)`);
  });

  it("makes : on a string a case-insensitive substring test", () => {
    expect(compile("params.plan:Gol")).toEqual({
      sql: `coalesce(${typeIs("string")} AND strpos(lower(${TEXT_AT}), lower(?::text)) > 0, false)`,
      params: [["plan"], ["plan"], "Gol"],
    });
  });

  it("compares numbers as jsonb, keeping their digits", () => {
    expect(compile("params.seats >= 10")).toEqual({
      sql: `coalesce(${typeIs("number")} AND ${JSON_AT} >= ?::jsonb, false)`,
      params: [["seats"], ["seats"], "10"],
    });
    expect(compile("params.seats = -1.50e+3").params[2]).toBe("-1.50e+3");
    expect(compile("params.id = 12345678901234567891").params[2]).toBe("12345678901234567891");
  });

  it("strips leading zeros, which JSON does not allow", () => {
    expect(compile("params.seats = 007").params[2]).toBe("7");
    expect(compile("params.seats = -00.5").params[2]).toBe("-0.5");
  });

  it("treats : with a number as =", () => {
    expect(compile("params.seats:10").sql).toBe(`coalesce(${typeIs("number")} AND ${JSON_AT} = ?::jsonb, false)`);
  });

  it("rejects exponents PostgreSQL would refuse", () => {
    expectError("params.seats > 1e1001", 16, /out of range/);
  });

  it("compares booleans with =, != and : only", () => {
    expect(compile("params.active = true")).toEqual({
      sql: `coalesce(${typeIs("boolean")} AND ${JSON_AT} = ?::jsonb, false)`,
      params: [["active"], ["active"], "true"],
    });
    expect(compile("params.active != false").sql).toContain(`${JSON_AT} <> ?::jsonb`);
    expect(compile("params.active:false").params[2]).toBe("false");
    expectError("params.active < true", 15, /operator "<" cannot be used on a boolean/);
  });

  it("treats quoted true and numbers as strings", () => {
    expect(compile('params.active = "true"').sql).toContain(typeIs("string"));
    expect(compile('params.seats = "10"').params[2]).toBe("10");
  });

  it("tests presence with :*", () => {
    expect(compile("params.plan:*")).toEqual({ sql: `${JSON_AT} IS NOT NULL`, params: [["plan"]] });
  });

  it("follows nested and backtick-quoted keys", () => {
    expect(compile('params.a.`b c`.`d``e`.f-g_1 = "x"').params[0]).toEqual(["a", "b c", "d`e", "f-g_1"]);
    expect(compile("params.`a.b`:*").params[0]).toEqual(["a.b"]);
    expect(compile("params.``:*").params[0]).toEqual([""]);
  });

  it("rejects params without a key, empty keys and misplaced backticks", () => {
    expectError('params = "x"', 1, /"params" needs a key/);
    expectError('params.a..b = "x"', 10, /empty key/);
    expectError('params.a. = "x"', 10, /empty key/);
    expectError('params.a`b` = "x"', 9, /backtick/);
    expectError('params.`a b = "x"', 8, /unterminated backtick/);
  });
});

describe("compileTenantFilter: boolean structure", () => {
  it("makes OR bind tighter than AND, as AIP-160 does", () => {
    expect(compile('name = "a" AND name = "b" OR name = "c"')).toEqual({
      sql: "(lower(name) = lower(?::text) AND (lower(name) = lower(?::text) OR lower(name) = lower(?::text)))",
      params: ["a", "b", "c"],
    });
    expect(compile('name = "a" OR name = "b" AND name = "c"').sql).toBe(
      "((lower(name) = lower(?::text) OR lower(name) = lower(?::text)) AND lower(name) = lower(?::text))",
    );
  });

  it("joins terms separated only by whitespace with AND", () => {
    expect(compile("name:a domain:b OR domain:c")).toEqual({
      sql: "(strpos(lower(name), lower(?::text)) > 0 AND (strpos(domain, ?::text) > 0 OR strpos(domain, ?::text) > 0))",
      params: ["a", "b", "c"],
    });
  });

  it("negates with NOT and with -", () => {
    expect(compile('NOT name = "a"').sql).toBe("NOT (lower(name) = lower(?::text))");
    expect(compile('-name = "a"').sql).toBe("NOT (lower(name) = lower(?::text))");
    expect(compile("NOT NOT name:a").sql).toBe("NOT (NOT (strpos(lower(name), lower(?::text)) > 0))");
    expect(compile("-params.plan:* name:a").sql).toBe(
      "(NOT ((params #> ?::text[]) IS NOT NULL) AND strpos(lower(name), lower(?::text)) > 0)",
    );
  });

  it("binds NOT tighter than OR and AND", () => {
    expect(compile("NOT name:a OR name:b").sql).toBe(
      "(NOT (strpos(lower(name), lower(?::text)) > 0) OR strpos(lower(name), lower(?::text)) > 0)",
    );
  });

  it("reads - before a number after a comparator as a negative number", () => {
    expect(compile("params.balance < -5").params).toEqual([["balance"], ["balance"], "-5"]);
  });

  it("honours nested parentheses", () => {
    expect(compile('(name = "a" OR (domain:b AND NOT (domain:c))) params.x:*')).toEqual({
      sql:
        "((lower(name) = lower(?::text) OR (strpos(domain, ?::text) > 0 AND NOT (strpos(domain, ?::text) > 0)))" +
        " AND (params #> ?::text[]) IS NOT NULL)",
      params: ["a", "b", "c", ["x"]],
    });
  });

  it("treats keywords as case-sensitive", () => {
    expectError("name:a and name:b", 8, /unknown field "and"/);
  });
});

describe("compileTenantFilter: injection", () => {
  const evil = `'; DROP TABLE "Tenants"; --`;

  it("keeps values out of the SQL text", () => {
    const quoted = JSON.stringify(evil);
    const cases: Array<[string, string]> = [
      [`name = ${quoted}`, evil],
      [`name:${quoted}`, evil],
      [`domain = ${quoted}`, evil.toLowerCase()],
      [`params.x = ${quoted}`, evil],
      [`params.x:${quoted}`, evil],
    ];
    for (const [filter, bound] of cases) {
      const { sql, params } = compile(filter);
      expect(sql).not.toContain("DROP");
      expect(sql).not.toContain("--");
      expect(params).toContain(bound);
    }
  });

  it("keeps keys out of the SQL text", () => {
    const { sql, params } = compile("params.`x'); DROP TABLE t; --`:*");
    expect(sql).toBe("(params #> ?::text[]) IS NOT NULL");
    expect(params).toEqual([["x'); DROP TABLE t; --"]]);
  });

  it("emits exactly one ? per param and never ??", () => {
    const filters = [
      'name = "?" OR domain:"??"',
      'params.`?`.`??` = "?" params.n > 1 params.b = true params.p:*',
      'NOT (create_time > "2026-01-01T00:00:00Z" update_time < "2026-01-01T00:00:00Z")',
    ];
    for (const filter of filters) {
      const { sql, params } = compile(filter);
      expect(sql).not.toContain("??");
      expect(sql.match(/\?/g)?.length).toBe(params.length);
    }
  });
});

describe("compileTenantFilter: errors", () => {
  it("is a FilterError, an Error", () => {
    const error = failure("nmae = 1");
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe("FilterError");
  });

  it("names unknown fields", () => {
    expectError('nmae = "x"', 1, /unknown field "nmae"/);
    expectError('name:a nmae = "x"', 8, /unknown field "nmae"/);
    expectError('name.first = "x"', 1, /unknown field "name.first"/);
  });

  it("reports an unterminated string at its opening quote", () => {
    expectError('name = "abc', 8, /unterminated string/);
    expectError("name:a domain = 'x", 17, /unterminated string/);
  });

  it("reports a bad escape at its backslash", () => {
    expectError(String.raw`name = "a\x"`, 10, /invalid escape "\\\\x"/);
    expectError('name = "a\\', 8, /unterminated string/);
  });

  it("reports a missing value", () => {
    expectError("name =", 7, /missing value after "="/);
    expectError("name = AND domain:x", 8, /missing value after "="/);
    expectError("name = )", 8, /missing value/);
  });

  it("reports a missing comparator", () => {
    expectError("name", 5, /unexpected end of filter.*comparator/);
    expectError('name "a"', 6, /unexpected "\\"a\\"".*comparator/);
  });

  it("reports trailing garbage", () => {
    expectError('name = "a" "b"', 12, /unexpected "\\"b\\""/);
    expectError("name:a AND", 11, /unexpected end of filter/);
    expectError("name:a OR OR name:b", 11, /unexpected "OR"/);
    expectError("name:a #", 8, /unexpected character "#"/);
  });

  it("reports unbalanced parentheses", () => {
    expectError('(name = "a"', 12, /unexpected end of filter.*"\)"/);
    expectError('name = "a")', 11, /unexpected "\)"/);
    expectError("()", 2, /unexpected "\)"/);
  });

  it("rejects value types a field does not take", () => {
    expectError("name = 5", 8, /field "name" expects a string value/);
    expectError("name = true", 8, /field "name" expects a string value/);
    expectError("domain = 1.5", 10, /field "domain" expects a string value/);
  });

  it("allows * only after : on params", () => {
    expectError("name:*", 6, /"\*" is only allowed/);
    expectError("params.x = *", 12, /"\*" is only allowed/);
    expectError("params.x:a*", 11, /unexpected "\*"/);
  });

  it("rejects NUL characters, which PostgreSQL text cannot hold", () => {
    expectError('name = "a\u0000"', 10, /NUL/);
  });

  it("counts positions in characters, not UTF-16 units", () => {
    expectError('name = "😀" nmae = "x"', 12, /unknown field "nmae"/);
  });
});

describe("compileTenantFilter: limits", () => {
  it("accepts 2000 characters and rejects more", () => {
    const valueOf = (length: number) => `name = "${"a".repeat(length - 'name = ""'.length)}"`;
    expect(compile(valueOf(2000)).params[0]).toHaveLength(1991);
    expectError(valueOf(2001), 2001, /too long/);
  });

  it("counts the length in characters", () => {
    const filter = `name = "${"😀".repeat(1990)}"`;
    expect(filter.length).toBeGreaterThan(2000);
    expect(compile(filter).params[0]).toBe("😀".repeat(1990));
  });

  it("allows 32 levels of nesting and rejects 33", () => {
    const nested = (depth: number) => `${"(".repeat(depth)}name:a${")".repeat(depth)}`;
    expect(compile(nested(32)).sql).toBe("strpos(lower(name), lower(?::text)) > 0");
    expectError(nested(33), 33, /nested too deeply/);
    expectError(`${"NOT ".repeat(33)}name:a`, 129, /nested too deeply/);
    expectError(`${"-(".repeat(17)}name:a${")".repeat(17)}`, 33, /nested too deeply/);
  });

  it("allows 100 comparisons and rejects 101", () => {
    const many = (count: number) => Array.from({ length: count }, () => "name:a").join(" ");
    expect(compile(many(100)).params).toHaveLength(100);
    expectError(many(101), 701, /too many comparisons/);
  });
});
