import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { create, fromBinary, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { CreateTenantRequestSchema, ListTenantsResponseSchema, TenantSchema } from "../../gen/tenancy/v1/tenant_pb.js";
import { encodeListTenantsResponse, encodeTenant } from "../../src/tenants/tenant.encoder.js";
import { decodeCreateTenantRequest, FIELDS_LEFT_TO_FROM_BINARY } from "../../src/tenants/tenant.decoder.js";
import { fieldArbitrary, fullName, isDefault } from "../support/arbitrary.js";

/**
 * The hand-written codecs (src/tenants/tenant.encoder.ts, tenant.decoder.ts)
 * know the fields of their messages by number. A field added to the proto
 * that they do not know would be dropped on the gRPC fast path while every
 * other test stays green; here each field of the generated descriptors is
 * set alone, and each codec must handle it exactly as protobuf-es does.
 */

/** Messages of `desc` with exactly one field set (to a few values), nested messages walked into. */
function singleFieldMessages(desc: DescMessage): Array<{ field: string; message: object }> {
  const out: Array<{ field: string; message: object }> = [];
  for (const field of desc.fields) {
    const nested = nestedMessage(field);
    if (nested) {
      for (const inner of singleFieldMessages(nested)) {
        out.push({ field: inner.field, message: create(desc, { [field.localName]: field.fieldKind === "list" ? [inner.message] : inner.message } as never) });
      }
      continue;
    }
    for (const value of fc.sample(fieldArbitrary(field).filter((v) => !isDefault(v)), { numRuns: 5, seed: 42 })) {
      const init = field.oneof ? { [field.oneof.localName]: { case: field.localName, value } } : { [field.localName]: value };
      out.push({ field: fullName(field), message: create(desc, init as never) });
    }
  }
  return out;
}

/** The messages of this service's own schema, walked field by field (the well-known types are the codecs' fixed part). */
function nestedMessage(field: DescField): DescMessage | undefined {
  const message = field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message") ? field.message : undefined;
  return message && !message.typeName.startsWith("google.protobuf.") ? message : undefined;
}

describe("the hand-written codecs know every field of the schema", () => {
  it.each([
    [TenantSchema, encodeTenant],
    [ListTenantsResponseSchema, encodeListTenantsResponse],
  ] as const)("%s: the encoder writes each field as toBinary does", (schema, encode) => {
    const cases = singleFieldMessages(schema);
    expect(cases.length).toBeGreaterThan(0);
    for (const { field, message } of cases) {
      const expected = Buffer.from(toBinary(schema as DescMessage, message as never)).toString("hex");
      const written = Buffer.from((encode as (m: never) => Uint8Array)(message as never)).toString("hex");
      expect({ field, bytes: written }).toEqual({ field, bytes: expected });
    }
  });

  it("CreateTenantRequest: the decoder reads each field as fromBinary does, but those it leaves to fromBinary", () => {
    const schemaFields = new Set([CreateTenantRequestSchema, TenantSchema].flatMap((m) => m.fields.map(fullName)));
    // A stale name would hide nothing and mean the list is not kept.
    for (const name of FIELDS_LEFT_TO_FROM_BINARY) expect(schemaFields).toContain(name);
    for (const { field, message } of singleFieldMessages(CreateTenantRequestSchema)) {
      const bytes = toBinary(CreateTenantRequestSchema, message as never);
      const decoded = decodeCreateTenantRequest(bytes);
      if (FIELDS_LEFT_TO_FROM_BINARY.has(field)) {
        expect({ field, decoded }).toEqual({ field, decoded: undefined });
      } else {
        expect({ field, decoded }).toEqual({ field, decoded: fromBinary(CreateTenantRequestSchema, bytes) });
      }
    }
  });
});
