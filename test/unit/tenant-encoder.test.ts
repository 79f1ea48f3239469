import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { create, toBinary, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ListTenantsResponseSchema, Tenant_State, TenantSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { encodeListTenantsResponse, encodeTenant } from "../../src/tenants/tenant.encoder.js";

// JSON as params can hold it: finite numbers (-0 included), any strings and keys.
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.integer(),
    fc.string({ unit: "binary" }),
    fc.array(tie("value"), { maxLength: 4 }),
    tie("object"),
  ),
  object: fc.dictionary(fc.string({ unit: "binary", maxLength: 12 }), tie("value"), { maxKeys: 5 }),
}));

const timestamp = fc.option(
  fc.integer({ min: -62135596800000, max: 253402300799999 }).map((ms) => timestampFromMs(ms)),
  { nil: undefined },
);

const tenant = fc
  .record({
    id: fc.oneof(fc.uuid(), fc.constant("")),
    name: fc.string({ unit: "binary" }),
    domain: fc.string(),
    params: fc.option(json.object as fc.Arbitrary<JsonObject>, { nil: undefined }),
    createTime: timestamp,
    updateTime: timestamp,
    etag: fc.string(),
    state: fc.constantFrom(Tenant_State.STATE_UNSPECIFIED, Tenant_State.ACTIVE, Tenant_State.SUSPENDED, Tenant_State.DELETED),
    deleteTime: timestamp,
    purgeTime: timestamp,
    paramsSchema: fc.oneof(fc.constantFrom("", "program@3"), fc.string({ unit: "binary" })),
  })
  .map((fields) => create(TenantSchema, fields));

describe("hand-written tenant encoders", () => {
  it("write the same bytes as protobuf-es's toBinary for any tenant", () => {
    fc.assert(
      fc.property(tenant, (t) => {
        expect(Buffer.from(encodeTenant(t))).toEqual(Buffer.from(toBinary(TenantSchema, t)));
      }),
      { numRuns: 2000 },
    );
  });

  it("write the same bytes for any page of tenants", () => {
    const page = fc.record({
      tenants: fc.array(tenant, { maxLength: 5 }),
      nextPageToken: fc.string(),
      totalSize: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    });
    fc.assert(
      fc.property(page, (fields) => {
        const response = create(ListTenantsResponseSchema, fields);
        expect(Buffer.from(encodeListTenantsResponse(response))).toEqual(Buffer.from(toBinary(ListTenantsResponseSchema, response)));
      }),
      { numRuns: 200 },
    );
  });

  it("encodes the nested values of params exactly (a fixed example)", () => {
    const t = create(TenantSchema, {
      id: "7c1f0e4e-1f55-4d8e-9c43-0d2bb1d7a001",
      params: { a: null, b: -0, c: [1, "x", [true], { d: {} }], "": "", é: { f: false }, ...JSON.parse('{"__proto__": {"g": 1}}') },
      createTime: timestampFromMs(-1),
      state: Tenant_State.ACTIVE,
      paramsSchema: "white-label.theme@12",
    });
    expect(Buffer.from(encodeTenant(t))).toEqual(Buffer.from(toBinary(TenantSchema, t)));
  });
});
