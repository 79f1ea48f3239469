import { describe, expect, it } from "vitest";
import { keySegment, ParamsSchemaCompiler, SchemaCompileError } from "../../src/params-schemas/params-schema.compiler.js";

const compiler = new ParamsSchemaCompiler();
const withDefaults = compiler.compile({
  type: "object",
  properties: { a: { type: "object", properties: { b: { type: "integer", default: 1 } } }, c: { type: "string", default: "x" } },
});

describe("compiled params schemas", () => {
  it("fill defaults into a copy, leaving the caller's params (and what they share) untouched", () => {
    const params = { a: {} };
    const result = withDefaults.apply(params);
    expect(result).toEqual({ params: { a: { b: 1 }, c: "x" }, violations: [] });
    expect(params).toEqual({ a: {} });
  });

  it("write defaults into the params themselves when the caller owns them", () => {
    const params = { a: {} };
    expect(withDefaults.apply(params, { inPlace: true }).params).toBe(params);
    expect(params).toEqual({ a: { b: 1 }, c: "x" });
  });

  it("say whether they fill defaults", () => {
    expect(withDefaults.fillsDefaults).toBe(true);
    expect(compiler.compile({ type: "object" }).fillsDefaults).toBe(false);
  });

  it("name keys that need it in backticks, JSON Pointer escapes undone", () => {
    const compiled = compiler.compile({ type: "object", additionalProperties: { type: "string" } });
    expect(compiled.apply({ "a/b": 1, "c~d": 2, "e`f": 3, plain_key: 4 }).violations.map((v) => v.path)).toEqual([
      ".`a/b`",
      ".`c~d`",
      ".`e``f`",
      ".plain_key",
    ]);
    expect(keySegment("")).toBe(".``");
  });

  it("refuse documents with every problem found before compiling", () => {
    try {
      compiler.compile({ $schema: "http://json-schema.org/draft-04/schema#", description: "x".repeat(300 * 1024) });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(SchemaCompileError);
      expect((error as SchemaCompileError).violations.map((v) => v.path)).toEqual(["", ".$schema"]);
    }
  });

  it("keep nothing of a document in the shared ajv instance: one $id can be compiled again", () => {
    const doc = { $id: "https://schemas.example/same", type: "object" };
    compiler.compile(doc);
    expect(() => compiler.compile({ ...doc, title: "another version" })).not.toThrow();
  });
});
