import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { lineOf, locate, parseJsonText, parsePath } from "../../console/src/json-text.js";

/** The console's params editor places the service's errors with this parser (console/src/json-text.ts). */
describe("JSON text with positions", () => {
  const text = `{
  "plan": "pro",
  "theme": {
    "color": "blue",
    "example.com": { "limit": 3 }
  },
  "items": [1, { "name": "x" }]
}`;

  it("finds the line of the key a field path names", () => {
    const parsed = parseJsonText(text);
    if (!parsed.ok) throw new Error(parsed.message);
    const line = (path: string) => {
      const found = locate(parsed.spans, parsePath(path));
      return found && { line: lineOf(text, found.span.start).line, exact: found.exact, key: text.slice(found.span.start, found.span.end) };
    };
    expect(line("theme.color")).toEqual({ line: 4, exact: true, key: '"color"' });
    expect(line("theme.`example.com`.limit")).toEqual({ line: 5, exact: true, key: '"limit"' });
    expect(line("items[1].name")).toEqual({ line: 7, exact: true, key: '"name"' });
    // A key that is not there (a schema's missing required key) is placed on its nearest parent.
    expect(line("theme.font.size")).toEqual({ line: 3, exact: false, key: '"theme"' });
    expect(line("absent")).toBeUndefined();
  });

  it("reports where the text stops being JSON", () => {
    const broken = '{\n  "a": 1,\n  "b" 2\n}';
    const parsed = parseJsonText(broken);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(lineOf(broken, parsed.offset)).toEqual({ line: 3, column: 7 });
    expect(parsed.message).toMatch(/expected ":"/);
    for (const bad of ["", "{", '{"a":}', "[1,]", '{"a":1} x', '"\\x"', "01", '{"a":"\u0001"}']) expect(parseJsonText(bad).ok, bad).toBe(false);
  });

  it("reads every JSON document as JSON.parse does", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, pretty) => {
        const json = JSON.stringify(value, null, pretty ? 2 : undefined);
        const parsed = parseJsonText(json);
        expect(parsed.ok).toBe(true);
        if (parsed.ok) expect(parsed.value).toEqual(JSON.parse(json));
      }),
      // A "__proto__" key, which an assignment would turn into the prototype (found by this property).
      { examples: [[JSON.parse('[[{"":{"__proto__":0}}]]'), false]] },
    );
  });

  it("splits the service's field paths", () => {
    expect(parsePath("theme.color")).toEqual(["theme", "color"]);
    expect(parsePath("items[2].name")).toEqual(["items", 2, "name"]);
    expect(parsePath("`example.com`.limit")).toEqual(["example.com", "limit"]);
    expect(parsePath("")).toEqual([]);
  });
});
