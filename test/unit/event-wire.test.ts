import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { create, equals, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { EventSchema, WatchEventsResponseSchema } from "../../gen/tenancy/v1/event_pb.js";
import { preEncodedEventResponse } from "../../src/events/event.wire.js";
import { parseRpcContentType } from "../../src/rpc/request-reader.js";
import { messageArbitrary } from "../support/arbitrary.js";

/**
 * Binary watchers are sent a response that holds its event already encoded
 * (src/events/event.wire.ts). This relies on protobuf-es writing unknown
 * fields as they are and on the event's field number; if either moves, the
 * bytes differ here.
 */
describe("a pre-encoded watch response", () => {
  it("serializes to the bytes of the response with the event set, and decodes to the event", () => {
    fc.assert(
      fc.property(messageArbitrary(EventSchema), (event) => {
        const expected = toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { kind: { case: "event", value: event } }));
        const bytes = toBinary(WatchEventsResponseSchema, preEncodedEventResponse(event));
        expect(Buffer.from(bytes).equals(Buffer.from(expected))).toBe(true);
        const decoded = fromBinary(WatchEventsResponseSchema, bytes);
        expect(decoded.kind.case).toBe("event");
        expect(equals(EventSchema, decoded.kind.value as typeof event, event)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("is one object however many watchers serialize it, and stays as it was", () => {
    const event = create(EventSchema, { sequence: 7n, id: "e", type: "tenant.created", tenantId: "t" });
    const response = preEncodedEventResponse(event);
    const first = toBinary(WatchEventsResponseSchema, response);
    for (let i = 0; i < 3; i++) expect(toBinary(WatchEventsResponseSchema, response)).toEqual(first);
  });

  it("has no JSON form: which is why JSON watchers get the message itself", () => {
    const event = create(EventSchema, { sequence: 7n, id: "e", type: "tenant.created" });
    expect(toJson(WatchEventsResponseSchema, preEncodedEventResponse(event))).toEqual({});
  });

  it("tells JSON content types from binary ones (the watch handler picks the pre-encoded form for the binary ones)", () => {
    for (const type of ["application/connect+json", "application/grpc+json", "application/grpc-web+json", "application/json", "application/connect+json; charset=utf-8"]) {
      expect(parseRpcContentType(type)?.binary, type).toBe(false);
    }
    for (const type of ["application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto", "application/grpc-web-text", "application/connect+proto", null]) {
      expect(parseRpcContentType(type)?.binary === false, String(type)).toBe(false);
    }
  });
});
