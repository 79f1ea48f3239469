import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { EventSchema, WatchEventsResponseSchema, type Event, type WatchEventsResponse } from "../../gen/tenancy/v1/event_pb.js";
import { markShared } from "../rpc/shared-messages.js";

/** The field of WatchEventsResponse that carries an event (read from the descriptor, so a renumbering follows). */
const EVENT_FIELD = WatchEventsResponseSchema.field.event!;

/**
 * A WatchEventsResponse for binary watchers whose event is already encoded.
 *
 * With 100 watchers, encoding each event once per watcher was most of the
 * feed's cost (docs/performance.md). The hub makes this message once per
 * event and every binary watcher of the instance is sent the same object:
 * it holds the encoded event as the response's unknown field 1, which
 * protobuf-es's toBinary writes as it is (tag, length, bytes), so the bytes
 * on the wire are those of the response with `event` set. event-wire.test.ts
 * checks that byte for byte, and that a reader decodes the event. JSON has
 * no unknown fields: watchers that speak JSON are sent the message itself.
 * Nobody may mutate the returned message: it is shared (and marked so, for
 * the gRPC fast path, which then frames it once for every watcher).
 */
export function preEncodedEventResponse(event: Event): WatchEventsResponse {
  // `data` of an unknown length-delimited field is the length and the bytes, as BinaryReader.skip returns them.
  const data = new BinaryWriter().bytes(toBinary(EventSchema, event)).finish();
  const response = create(WatchEventsResponseSchema);
  response.$unknown = [{ no: EVENT_FIELD.number, wireType: WireType.LengthDelimited, data }];
  return markShared(response);
}

