import { describe, expect, it } from "vitest";
import { create, fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { BadRequestSchema } from "../../gen/google/rpc/error_details_pb.js";
import { TenantService } from "../../gen/tenancy/v1/tenant_pb.js";
import { isConnectParseError, setTrailerStatus } from "../../src/rpc/connect-internals.js";

/**
 * What src/rpc/connect-internals.ts relies on in Connect-ES beyond its
 * documented API. If an upgrade of @connectrpc/connect changes any of it,
 * this fails, before clients see the difference.
 */
describe("Connect's internals, as this service uses them", () => {
  it("setTrailerStatus writes status, percent-encoded message, details and metadata", () => {
    const error = new ConnectError("bad id: 50% done", Code.InvalidArgument, { "x-request-id": "r1" }, [
      { desc: BadRequestSchema, value: create(BadRequestSchema, { fieldViolations: [{ field: "id", description: "not a UUID" }] }) },
    ]);
    const trailer = setTrailerStatus(new Headers(), error);
    expect(trailer.get("grpc-status")).toBe("3");
    expect(trailer.get("grpc-message")).toBe("bad%20id%3A%2050%25%20done");
    expect(trailer.get("x-request-id")).toBe("r1");
    const status = fromBinary(StatusSchema, Buffer.from(trailer.get("grpc-status-details-bin")!, "base64"));
    expect(status.code).toBe(Code.InvalidArgument);
    expect(status.details.map((d) => d.typeUrl)).toEqual(["type.googleapis.com/google.rpc.BadRequest"]);
    expect(fromBinary(BadRequestSchema, status.details[0]!.value).fieldViolations[0]!.field).toBe("id");
  });

  it("Connect's binary parsing refuses what is not protobuf with an error isConnectParseError recognizes", () => {
    let thrown: unknown;
    try {
      createMethodSerializationLookup(TenantService.method.getTenant, undefined, undefined, { readMaxBytes: 1024, writeMaxBytes: 1024 })
        .getI(true)
        .parse(Uint8Array.from([0x0a, 0x05, 0x61]));
    } catch (error) {
      thrown = error;
    }
    expect(isConnectParseError(thrown)).toBe(true);
    expect(isConnectParseError(new ConnectError("parse binary: x", Code.InvalidArgument))).toBe(false);
  });
});
