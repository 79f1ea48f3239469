import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { ConnectError, Code } from "@connectrpc/connect";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Ajv2020 } from "ajv/dist/2020.js";
import formats from "ajv-formats";
import { AJV_OPTIONS } from "../../src/params-schemas/params-schema.compiler.js";
import { BadRequestSchema } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * The service accepts exactly what ajv accepts: for schemas generated from a
 * small family (the keywords params schemas use most) and params generated
 * to hit and miss them, a schema registers iff ajv compiles it, a create
 * succeeds iff ajv validates the params, and what is stored is what ajv's
 * validation left in the data (defaults filled in). The reference is an ajv
 * of its own, with the options the service documents. FUZZ_SEED replays a
 * run.
 */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

const KEYS = ["a", "b", "c", "d"] as const;
const word = fc.stringMatching(/^[a-c@.x]{0,6}$/);
const scalar: fc.Arbitrary<JsonValue> = fc.oneof(fc.integer({ min: -5, max: 12 }), fc.double({ min: -3, max: 3, noNaN: true }).filter((n) => !Object.is(n, -0)), word, fc.boolean(), fc.constant(null));
const value: fc.Arbitrary<JsonValue> = fc.letrec<{ value: JsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    scalar,
    fc.constantFrom("ann@example.com", "2026-01-31", "not a date", "#a1b2c3"),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom("x", "y", ...KEYS), tie("value"), { maxKeys: 3 }),
  ),
})).value;

const validLeaf: fc.Arbitrary<JsonObject> = fc.oneof(
  fc.constant({}),
  fc.constantFrom("string", "integer", "number", "boolean", "null", "array", "object").map((type) => ({ type })),
  fc.record({ type: fc.constant("integer"), minimum: fc.integer({ min: -2, max: 5 }), maximum: fc.integer({ min: 3, max: 10 }) }, { requiredKeys: ["type"] }),
  fc.record({ type: fc.constant("string"), minLength: fc.integer({ min: 0, max: 3 }), maxLength: fc.integer({ min: 2, max: 6 }), pattern: fc.constantFrom("^[a-c]*$", "@", "^x") }, { requiredKeys: ["type"] }),
  fc.record({ type: fc.constant("string"), format: fc.constantFrom("email", "date") }),
  fc.uniqueArray(scalar, { minLength: 1, maxLength: 4, selector: (v) => JSON.stringify(v) }).map((values) => ({ enum: values })),
  scalar.map((v) => ({ const: v })),
  fc.record({ type: fc.constant("number"), exclusiveMinimum: fc.integer({ min: -2, max: 2 }), multipleOf: fc.constantFrom(0.5, 1, 2) }, { requiredKeys: ["type"] }),
) as fc.Arbitrary<JsonObject>;

/** Now and then a leaf that does not compile: a misspelt keyword or type, a broken pattern, a remote $ref. */
const leaf: fc.Arbitrary<JsonObject> = fc.oneof(
  { arbitrary: validLeaf, weight: 30 },
  { arbitrary: fc.constantFrom<JsonObject>({ type: "strng" }, { minimun: 2 }, { type: "string", pattern: "([a" }, { $ref: "https://schemas.example.com/x.json" }), weight: 1 },
);

const schemaOf: fc.Arbitrary<JsonObject> = fc.letrec<{ schema: JsonObject }>((tie) => ({
  schema: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    fc.record({ type: fc.constant("array"), items: tie("schema"), maxItems: fc.integer({ min: 0, max: 3 }), uniqueItems: fc.boolean() }, { requiredKeys: ["type"] }),
    fc.tuple(tie("schema"), tie("schema")).map(([x, y]) => ({ oneOf: [x, y] })),
    fc.tuple(tie("schema"), tie("schema")).map(([x, y]) => ({ anyOf: [x, y] })),
    fc
      .record({
        properties: fc.dictionary(fc.constantFrom(...KEYS), tie("schema"), { maxKeys: 3 }),
        required: fc.subarray([...KEYS]),
        additionalProperties: fc.boolean(),
      }, { requiredKeys: ["properties"] })
      .map((o) => ({ type: "object", ...o })),
  ),
})).schema as fc.Arbitrary<JsonObject>;

/** A top-level object schema; some properties get a default (of any value: ajv does not check defaults). */
const rootSchema: fc.Arbitrary<JsonObject> = fc
  .record({
    properties: fc.dictionary(fc.constantFrom(...KEYS), fc.tuple(schemaOf, fc.option(value, { nil: undefined })), { maxKeys: 4 }),
    required: fc.oneof(fc.constant<string[]>([]), fc.subarray<string>([...KEYS], { maxLength: 2 })),
    additionalProperties: fc.oneof(fc.constant(true), fc.boolean()),
  })
  .map(({ properties, required, additionalProperties }) => ({
    type: "object",
    properties: Object.fromEntries(Object.entries(properties).map(([k, [s, d]]) => [k, d === undefined ? s : { ...s, default: d }])),
    required,
    additionalProperties,
  }));

const paramsOf: fc.Arbitrary<JsonObject> = fc.dictionary(fc.constantFrom(...KEYS, "z"), value, { maxKeys: 5 });

function reference() {
  const ajv = new Ajv2020(AJV_OPTIONS);
  formats.default(ajv);
  return ajv;
}

let n = 0;
describe("params schemas, property", () => {
  it("the service accepts exactly what ajv accepts, and stores what ajv's validation leaves (defaults filled in)", async () => {
    const ajv = reference();
    let compiled = 0;
    let notCompiled = 0;
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(rootSchema, fc.array(paramsOf, { minLength: 1, maxLength: 4 }), async (schema, paramsList) => {
        n += 1;
        const name = `prop-${n}`;
        let validate: ((data: unknown) => boolean) | undefined;
        try {
          validate = ajv.compile(schema);
        } catch {
          validate = undefined;
        } finally {
          ajv.removeSchema(schema);
        }
        const registered = await server.grpc.paramsSchemas.createParamsSchemaVersion({ name, schema }).then(
          (s) => s,
          (e: unknown) => ConnectError.from(e),
        );
        if (validate === undefined) {
          expect(registered).toBeInstanceOf(ConnectError);
          expect((registered as ConnectError).code).toBe(Code.InvalidArgument);
          notCompiled += 1;
          return;
        }
        if (registered instanceof ConnectError) throw new Error(`the service refused a schema ajv compiles: ${registered.message}`);
        compiled += 1;
        for (const params of paramsList) {
          const data = structuredClone(params);
          const valid = validate(data);
          n += 1;
          const outcome = await server.grpc.tenants
            .createTenant({ tenant: { name: `Prop ${n}`, domain: `prop-${n}.property.example`, params, paramsSchema: registered.paramsSchema } })
            .then(
              (t) => ({ params: t.params }),
              (e: unknown) => ConnectError.from(e),
            );
          if (valid) {
            if (outcome instanceof ConnectError) throw new Error(`refused what ajv accepts: ${JSON.stringify(params)}: ${outcome.message}`);
            expect(outcome.params).toEqual(data);
            accepted += 1;
          } else {
            if (!(outcome instanceof ConnectError)) throw new Error(`accepted what ajv refuses: ${JSON.stringify(params)}`);
            expect(outcome.code).toBe(Code.InvalidArgument);
            const fields = outcome.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field) ?? [];
            expect(fields.length).toBeGreaterThan(0);
            for (const field of fields) expect(field.startsWith("tenant.params")).toBe(true);
            refused += 1;
          }
        }
      }),
      { numRuns: 150, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
    // The family and the params both hit and miss: the property was exercised on each side.
    expect(compiled).toBeGreaterThan(80);
    expect(notCompiled).toBeGreaterThan(3);
    expect(accepted).toBeGreaterThan(40);
    expect(refused).toBeGreaterThan(40);
  }, 120_000);
});
