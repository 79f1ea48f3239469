import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import {
  ListEventsResponseSchema,
  WatchEventsResponseSchema,
  type ListEventsRequest,
  type ListEventsResponse,
  type WatchEventsRequest,
  type WatchEventsResponse,
} from "../../gen/tenancy/v1/event_pb.js";
import { FailedPreconditionError, invalidArgument, ResourceExhaustedError, Violations } from "../common/errors.js";
import { optionalId } from "../common/ids.js";
import { EVENTS_EXPIRED, WATCHER_TOO_SLOW } from "../common/reasons.js";
import { cutPage, decodePageToken, pageSize, queryFingerprint } from "../common/pagination.js";
import { rowDates } from "../database/rows.js";
import type { Principal } from "../auth/principal.js";
import { EventRepository, type EventQuery, type EventRow } from "./event.repository.js";
import { toEventMessage } from "./event.mapper.js";
import { isEventType } from "./event.types.js";
import { EventVisibility } from "./event.visibility.js";
import type { EventHub, FeedEvent } from "./event.hub.js";

export interface WatchOptions {
  /** How long a watcher may go without a message before it gets a progress message. */
  progressIntervalMs: number;
  /** Events a watcher may have waiting before its stream ends with RESOURCE_EXHAUSTED. */
  maxBacklog: number;
  /** Events read per catch-up query. */
  catchUpPageSize: number;
}

export const defaultWatchOptions: WatchOptions = { progressIntervalMs: 5_000, maxBacklog: 10_000, catchUpPageSize: 500 };

function checkTypes(types: readonly string[], field: string, violations: Violations): void {
  types.forEach((type, i) => {
    if (!isEventType(type)) violations.add(`${field}[${i}]`, `unknown event type "${type.slice(0, 64)}"`);
  });
}

function checkSequence(value: string): boolean {
  return /^\d{1,19}$/.test(value);
}

/** The audit log: ListEvents. */
export class EventService {
  private readonly events: EventRepository;

  constructor(private readonly em: EntityManager) {
    this.events = new EventRepository(em);
  }

  async list(request: ListEventsRequest, principal: Principal): Promise<ListEventsResponse> {
    const violations = new Violations();
    const tenantId = optionalId(request.tenantId, "tenant_id", violations);
    const actor = optionalId(request.actor, "actor", violations);
    checkTypes(request.types, "types", violations);
    const startTime = request.startTime ? timestampDate(request.startTime) : undefined;
    const endTime = request.endTime ? timestampDate(request.endTime) : undefined;
    if (startTime && endTime && endTime < startTime) violations.add("end_time", "must not be before start_time");
    const order = request.orderBy.trim().replace(/\s+/g, " ");
    if (order !== "" && order !== "sequence" && order !== "sequence asc" && order !== "sequence desc") {
      violations.add("order_by", `"${request.orderBy.slice(0, 64)}" is not a valid ordering: use "sequence" or "sequence desc"`);
    }
    violations.throwIfAny();
    const limit = pageSize(request.pageSize);
    const descending = order === "sequence desc";
    const visibility = await EventVisibility.of(principal, () => this.em);
    visibility?.checkTenantFilter(tenantId);
    const query: EventQuery = {
      tenantId,
      actor,
      types: [...new Set(request.types)],
      startTime,
      endTime,
      visibleTo: visibility?.asQuery(),
    };
    const fingerprint = queryFingerprint([
      tenantId ?? "",
      actor ?? "",
      [...new Set(request.types)].sort(),
      startTime?.toISOString() ?? "",
      endTime?.toISOString() ?? "",
      descending,
    ]);
    const cursor = decodePageToken(request.pageToken, fingerprint, 1);
    if (cursor && !checkSequence(cursor.keys[0]!)) {
      throw invalidArgument("page_token", "is malformed: pass the next_page_token of a previous response");
    }
    const [rows, latest] = await Promise.all([
      this.events.list(query, { after: cursor ? BigInt(cursor.keys[0]!) : undefined, descending, limit: limit + 1 }),
      this.events.latestSequence(),
    ]);
    const page = cutPage(
      rows.map((row) => ({ row, cursor: [row.sequence] })),
      limit,
      fingerprint,
    );
    const date = rowDates(this.em.getPlatform());
    return create(ListEventsResponseSchema, {
      events: page.rows.map(({ row }) => toEventMessage(row, date)),
      nextPageToken: page.nextPageToken,
      latestSequence: latest,
    });
  }
}

function progress(sequence: bigint, time: Timestamp = timestampNow()): WatchEventsResponse {
  return create(WatchEventsResponseSchema, { kind: { case: "progress", value: { sequence, time } } });
}

/**
 * WatchEvents: replays the events after the client's position from the
 * database, then follows the hub's live batches. The subscription starts
 * before the replay, so nothing committed meanwhile falls between the two.
 */
export async function* watchEvents(
  hub: EventHub,
  em: () => EntityManager,
  request: WatchEventsRequest,
  principal: Principal,
  signal: AbortSignal,
  options: WatchOptions,
  /** How the stream's messages are serialized: binary watchers are sent each live event's shared, pre-encoded response. */
  encoding: "binary" | "json" = "binary",
): AsyncGenerator<WatchEventsResponse> {
  const violations = new Violations();
  if (request.afterSequence < 0n) violations.add("after_sequence", "must not be negative");
  if (request.afterSequence > 0n && request.startNow) violations.add("start_now", "cannot be combined with after_sequence");
  const tenantId = optionalId(request.tenantId, "tenant_id", violations);
  checkTypes(request.types, "types", violations);
  violations.throwIfAny();
  const types = new Set(request.types);
  const visibility = await EventVisibility.of(principal, em);
  visibility?.checkTenantFilter(tenantId);

  await Promise.race([
    hub.whenReady(),
    new Promise((_, reject) =>
      signal.addEventListener("abort", () => reject(new ConnectError("the call was cancelled", Code.Canceled)), { once: true }),
    ),
  ]);
  const subscription = hub.subscribe(options.maxBacklog);
  try {
    const repository = new EventRepository(em());
    const date = rowDates(em().getPlatform());
    let position = request.startNow ? subscription.from : request.afterSequence;
    if (request.startNow) {
      // The hub may not have read the latest commits yet: "now" is the
      // database's, and what the hub brings up to it is skipped below.
      position = maxBig(position, await repository.latestSequence());
      yield progress(position);
    } else {
      const prunedThrough = await repository.prunedThrough();
      if (position < prunedThrough) {
        throw new FailedPreconditionError(
          EVENTS_EXPIRED,
          `the events after sequence ${position} were pruned: list again and watch from the new position`,
          { oldest_sequence: (prunedThrough + 1n).toString() },
        );
      }
    }
    const matches = (row: EventRow) =>
      (tenantId === undefined || row.tenant_id === tenantId) && (types.size === 0 || types.has(row.type)) && (visibility?.admit(row) ?? true);

    // Replay up to the subscription's start, in pages; the filters that SQL
    // can apply are applied there, visibility again here (it changes as the
    // caller's own membership events pass).
    const replay: EventQuery = { tenantId, types: [...types], visibleTo: undefined };
    while (position < subscription.from) {
      const rows = await repository.list(replay, { after: position, descending: false, limit: options.catchUpPageSize });
      const due = rows.filter((row) => BigInt(row.sequence) <= subscription.from);
      for (const row of due) {
        position = BigInt(row.sequence);
        if (matches(row)) yield create(WatchEventsResponseSchema, { kind: { case: "event", value: toEventMessage(row, date) } });
      }
      if (due.length < rows.length || rows.length < options.catchUpPageSize) break;
    }
    if (position < subscription.from) position = subscription.from;
    if (!request.startNow) yield progress(position);

    // Live.
    let lastSent = Date.now();
    for (;;) {
      const batch: FeedEvent[] = await subscription.next(options.progressIntervalMs, signal);
      if (subscription.overflowed) {
        throw new ResourceExhaustedError(
          WATCHER_TOO_SLOW,
          `this watcher read too slowly and more than ${options.maxBacklog} events waited for it: resume after sequence ${position}`,
          { resume_after: position.toString() },
        );
      }
      // The deadline passed or the client cancelled: the stream ends with
      // that status (DEADLINE_EXCEEDED, CANCELLED), on every transport.
      if (signal.aborted) throw signal.reason instanceof ConnectError ? signal.reason : new ConnectError("the call was cancelled", Code.Canceled);
      let sent = false;
      for (const event of batch) {
        if (event.sequence <= position) continue;
        position = event.sequence;
        if (matches(event.row)) {
          sent = true;
          yield encoding === "binary" ? event.binaryResponse : create(WatchEventsResponseSchema, { kind: { case: "event", value: event.message } });
          lastSent = Date.now();
        }
      }
      if (subscription.closed && subscription.backlog === 0) {
        throw new ConnectError(`the server is shutting down: resume after sequence ${position}`, Code.Unavailable);
      }
      // Quiet, or only events this watcher does not see: say how far it is.
      // An empty batch means the queue was empty when the hub's head was
      // read (both synchronously, here): every event up to the head has
      // been considered.
      if (batch.length === 0) position = maxBig(position, hub.head);
      if (!sent && (batch.length === 0 || Date.now() - lastSent >= options.progressIntervalMs)) {
        yield progress(position);
        lastSent = Date.now();
      }
    }
  } finally {
    subscription.unsubscribe();
  }
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
