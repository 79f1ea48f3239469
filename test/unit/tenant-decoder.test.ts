import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { CreateTenantRequestSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { decodeCreateTenantRequest, FIELDS_LEFT_TO_FROM_BINARY } from "../../src/tenants/tenant.decoder.js";
import { messageArbitrary } from "../support/arbitrary.js";

// From the descriptors: every field a client sends, including any added
// later (see tenant-codecs-schema.test.ts), without the output-only ones.
const request = messageArbitrary(CreateTenantRequestSchema, { omit: FIELDS_LEFT_TO_FROM_BINARY });

/** fromBinary's answer, or the error it throws. */
function reference(bytes: Uint8Array): unknown {
  try {
    return fromBinary(CreateTenantRequestSchema, bytes);
  } catch (error) {
    return error;
  }
}

describe("hand-written CreateTenantRequest decoder", () => {
  it("decodes what clients send exactly as fromBinary does", () => {
    fc.assert(
      fc.property(request, (req) => {
        const bytes = toBinary(CreateTenantRequestSchema, req);
        const fast = decodeCreateTenantRequest(bytes);
        expect(fast).toBeDefined();
        expect(fast).toEqual(fromBinary(CreateTenantRequestSchema, bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it("accepts nothing from corrupted input that fromBinary would read differently or refuse", () => {
    const corrupted = fc
      .tuple(request, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("set", "cut", "insert")), { minLength: 1, maxLength: 3 }))
      .map(([req, edits]) => {
        const bytes = [...toBinary(CreateTenantRequestSchema, req)];
        for (const [at, byte, edit] of edits) {
          const i = bytes.length === 0 ? 0 : at % bytes.length;
          if (edit === "set" && bytes.length > 0) bytes[i] = byte;
          else if (edit === "cut") bytes.length = i;
          else bytes.splice(i, 0, byte);
        }
        return Uint8Array.from(bytes);
      });
    let accepted = 0;
    fc.assert(
      fc.property(corrupted, (bytes) => {
        const fast = decodeCreateTenantRequest(bytes);
        if (fast === undefined) return;
        accepted++;
        const ref = reference(bytes);
        expect(ref).not.toBeInstanceOf(Error);
        expect(fast).toEqual(ref);
      }),
      { numRuns: 3000 },
    );
    // Some corruptions still form the plain shape (a changed character, say): the check above ran on them.
    expect(accepted).toBeGreaterThan(0);
  });

  it("leaves other shapes to fromBinary", () => {
    const withTime = toBinary(CreateTenantRequestSchema, create(CreateTenantRequestSchema, { tenant: { name: "a", createTime: { seconds: 1n } } }));
    const twice = Uint8Array.from([...toBinary(CreateTenantRequestSchema, create(CreateTenantRequestSchema, { requestId: "x" })), 0x12, 0x01, 0x79]);
    const unknownField = Uint8Array.from([0x18, 0x01]);
    const protoKey = toBinary(CreateTenantRequestSchema, create(CreateTenantRequestSchema, { tenant: { params: JSON.parse('{"__proto__": 1}') } }));
    for (const bytes of [withTime, twice, unknownField]) expect(decodeCreateTenantRequest(bytes)).toBeUndefined();
    // protobuf-es drops a __proto__ key on encoding already; decoding such bytes is the plain shape.
    expect(decodeCreateTenantRequest(protoKey)).toEqual(fromBinary(CreateTenantRequestSchema, protoKey));
  });
});
