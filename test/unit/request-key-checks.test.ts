import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CreateTenantRequestSchema, UpdateTenantRequestSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { findJsonNameProblem } from "../../src/rpc/strict-json.js";
import { findStructProtoKey } from "../../src/rpc/struct-keys.js";
import { createTenantBytes, updateTenantBytes } from "../support/raw-rpc.js";
import { jsonDocument, protoKeyPath } from "../support/json-docs.js";

/**
 * The checks that run on request bodies before protobuf-es reads them:
 * they must find exactly the `__proto__` keys (and, in JSON, the duplicate
 * names) that decoding would lose, at the path the client wrote, and never
 * fail on input that is malformed (the decoders report that).
 */
const body = (params: unknown) => JSON.stringify({ tenant: { name: "n", domain: "d.example", params }, requestId: "" });

describe("JSON bodies (strict-json.ts)", () => {
  it("name the first __proto__ key of a document, and nothing in one without", () => {
    fc.assert(
      fc.property(jsonDocument, (doc) => {
        expect(findJsonNameProblem(body(doc))?.field).toBe(protoKeyPath(doc, "tenant.params"));
      }),
      { numRuns: 500 },
    );
  });

  it("name a duplicate name at any depth, however its text is escaped", () => {
    expect(findJsonNameProblem(`{"tenant":{"params":{"a":1,"b":{"c":[{"x":1}, {"x":2,"y":3,"\\u0079":4}]}}}}`)?.field).toBe(
      "tenant.params.b.c[1].y",
    );
    expect(findJsonNameProblem(` { "tenant" : { "params" : { "a.b" : 1 , "a.b" : 1 } } } `)?.field).toBe("tenant.params.`a.b`");
    expect(findJsonNameProblem(`{"tenant":{},"tenant":{}}`)?.field).toBe("tenant");
    // The same name in different objects is no duplicate.
    expect(findJsonNameProblem(`{"a":{"a":{"a":[{"a":1},{"a":2}]}},"b":{"a":1}}`)).toBeUndefined();
  });

  it("never throw, and leave malformed text to JSON.parse", () => {
    const text = fc.oneof(
      jsonDocument.map(body),
      fc.tuple(jsonDocument.map(body), fc.nat(), fc.constantFrom("", "{", "}", "[", "]", ",", ":", '"', "\\", "\\u12", "x")).map(
        ([t, at, insert]) => t.slice(0, at % (t.length + 1)) + insert + t.slice(at % (t.length + 1)),
      ),
      fc.string({ unit: fc.constantFrom("{", "}", "[", "]", ",", ":", '"', "\\", "a", " ", "1") }),
    );
    fc.assert(
      fc.property(text, (t) => {
        let problem: ReturnType<typeof findJsonNameProblem>;
        expect(() => (problem = findJsonNameProblem(t))).not.toThrow();
        let parsed: unknown;
        try {
          parsed = JSON.parse(t);
        } catch {
          return;
        }
        // Valid JSON: a `__proto__` name anywhere is found (JSON.parse keeps it as an own key).
        if (problem?.description.includes("more than once")) return;
        const expected = protoKeyPath(parsed, "");
        expect(problem?.field).toBe(expected?.startsWith(".") ? expected.slice(1) : expected);
      }),
      { numRuns: 2000 },
    );
  });

  it("handle nesting far deeper than the call stack", () => {
    const depth = 200_000;
    expect(findJsonNameProblem(`${'{"a":'.repeat(depth)}{"__proto__":1}${"}".repeat(depth)}`)?.field).toMatch(/^a(\.a)+\.__proto__$/);
  });
});

describe("binary bodies (struct-keys.ts)", () => {
  it("name the first __proto__ key of a document, and nothing in one without", () => {
    fc.assert(
      fc.property(jsonDocument, fc.boolean(), (doc, update) => {
        const found = update
          ? findStructProtoKey(UpdateTenantRequestSchema, updateTenantBytes({ id: "x", params: doc }, ["params"]))
          : findStructProtoKey(CreateTenantRequestSchema, createTenantBytes({ name: "n", domain: "d", params: doc }, "r"));
        expect(found?.field).toBe(protoKeyPath(doc, "tenant.params"));
      }),
      { numRuns: 500 },
    );
  });

  it("never throw on corrupted bytes", () => {
    const corrupted = fc
      .tuple(jsonDocument, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }))
      .map(([doc, edits]) => {
        const bytes = createTenantBytes({ name: "n", domain: "d", params: doc });
        for (const [at, byte] of edits) bytes[at % bytes.length] = byte;
        return bytes;
      });
    fc.assert(
      fc.property(corrupted, (bytes) => {
        expect(() => findStructProtoKey(CreateTenantRequestSchema, bytes)).not.toThrow();
      }),
      { numRuns: 2000 },
    );
  });
});
