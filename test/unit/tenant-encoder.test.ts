import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ListTenantsResponseSchema, Tenant_State, TenantSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { encodeListTenantsResponse, encodeTenant } from "../../src/tenants/tenant.encoder.js";
import { messageArbitrary } from "../support/arbitrary.js";

// From the descriptors: every field of Tenant, including any added later (see tenant-codecs-schema.test.ts).
const tenant = messageArbitrary(TenantSchema);

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
    fc.assert(
      fc.property(messageArbitrary(ListTenantsResponseSchema), (response) => {
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
