/**
 * The change feed's figures for `npm run bench`: how soon a committed change
 * reaches watchers (1 and 100 of them) while writes run, and how many events
 * per second one watcher can follow.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { setMaxListeners } from "node:events";
import pg from "pg";
import { fromBinary } from "@bufbuild/protobuf";
import { createTenancyClients } from "../src/client.js";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { EventSchema, EventService, WatchEventsRequestSchema, WatchEventsResponseSchema, type WatchEventsResponse } from "../gen/tenancy/v1/event_pb.js";
import { encode, RawGrpcClient } from "./grpc-client.js";

const WATCH_PATH = `/${EventService.typeName}/${EventService.method.watchEvents.name}`;

export interface WatchLatency {
  watchers: number;
  writesPerSecond: number;
  delivered: number;
  p50: number;
  p99: number;
  max: number;
}

export interface FollowRate {
  events: number;
  seconds: number;
  eventsPerSecond: number;
}

const EVENT_FIELD = WatchEventsResponseSchema.field.event!.number;
const TIME_FIELD = EventSchema.field.time!.number;

/** The bytes of a message's length-delimited field, or undefined when it is not there. */
function fieldBytes(bytes: Uint8Array, field: number): Uint8Array | undefined {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (no === field) return reader.bytes();
    reader.skip(wireType, no);
  }
  return undefined;
}

/** An event's time (ms) from a WatchEventsResponse's bytes, or undefined for a progress message. */
export function eventTimeMs(bytes: Uint8Array): number | undefined {
  const event = fieldBytes(bytes, EVENT_FIELD);
  const time = event && fieldBytes(event, TIME_FIELD);
  if (time === undefined) return undefined;
  const timestamp = new BinaryReader(time);
  let seconds = 0;
  let nanos = 0;
  while (timestamp.pos < timestamp.len) {
    const [no, wireType] = timestamp.tag();
    if (no === 1) seconds = Number(timestamp.int64());
    else if (no === 2) nanos = timestamp.int32();
    else timestamp.skip(wireType, no);
  }
  return seconds * 1000 + Math.round(nanos / 1e6);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Opens `watchers` streams (on one HTTP/2 connection, as one consumer
 * process would), then writes at `rate` per second for `durationMs`
 * (CreateTenant over another connection); each delivery's latency is the
 * time from the event's commit time to its arrival, decoded.
 *
 * The watchers read with the bench's raw gRPC client (as the unary figures
 * do, bench/grpc-client.ts) unless BENCH_CLIENT=connect: 100 Connect
 * clients in this one process cost as much CPU as the service does, and on
 * two cores their own queue would be measured, not the service's.
 */
export async function measureWatchLatency(
  baseUrl: string,
  watchers: number,
  rate: number,
  durationMs: number,
  client: "raw" | "connect" = "raw",
): Promise<WatchLatency> {
  const reader = createTenancyClients({ baseUrl, protocol: "grpc" });
  const writer = createTenancyClients({ baseUrl, protocol: "grpc" });
  const controller = new AbortController();
  // One signal ends every watcher's stream.
  setMaxListeners(0, controller.signal);
  const latencies: number[] = [];
  const failures: unknown[] = [];
  let ready = 0;
  const receive = (message: WatchEventsResponse) => {
    if (message.kind.case === "progress") ready++;
    if (message.kind.case === "event") latencies.push(Date.now() - timestampDate(message.kind.value.time!).getTime());
  };
  const raw = client === "raw" ? new RawGrpcClient(baseUrl) : undefined;
  const request = encode(WatchEventsRequestSchema, { startNow: true });
  let received = 0;
  // The raw client reads each event's time from its bytes (a full decode
  // costs the shared CPU more than the service's sending it does), and
  // decodes one message in 100 whole, to check the two agree.
  const rawReceive = (bytes: Uint8Array) => {
    const time = eventTimeMs(bytes);
    if (time === undefined) ready++;
    else latencies.push(Date.now() - time);
    if (received++ % 100 === 0) {
      const message = fromBinary(WatchEventsResponseSchema, bytes);
      const decoded = message.kind.case === "event" ? timestampDate(message.kind.value.time!).getTime() : undefined;
      if (decoded !== time) failures.push(new Error(`the event's time read from its bytes (${time}) is not the decoded one (${decoded})`));
    }
  };
  const streams = Array.from({ length: watchers }, async () => {
    try {
      if (raw) {
        await raw.stream(WATCH_PATH, request, rawReceive, controller.signal);
      } else {
        for await (const message of reader.events.watchEvents({ startNow: true }, { signal: controller.signal })) receive(message);
      }
    } catch (error) {
      if (!controller.signal.aborted) failures.push(error);
    }
  });
  while (ready < watchers) await new Promise((resolve) => setTimeout(resolve, 10));
  const tag = Math.random().toString(36).slice(2, 8);
  let sent = 0;
  const pending: Array<Promise<unknown>> = [];
  const started = Date.now();
  while (Date.now() - started < durationMs) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; sent < due; sent++) {
      pending.push(writer.tenants.createTenant({ tenant: { name: `Feed bench ${tag} ${sent}`, domain: `fb-${tag}-${sent}.bench.example` } }));
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await Promise.all(pending);
  // Let the last deliveries arrive.
  const expected = sent * watchers;
  const until = Date.now() + 5_000;
  while (latencies.length < expected && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
  controller.abort();
  await Promise.all(streams);
  raw?.close();
  if (failures.length > 0) throw new Error(`${failures.length} of ${watchers} watch streams failed: ${String(failures[0])}`);
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    watchers,
    writesPerSecond: rate,
    delivered: latencies.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

/**
 * One watcher follows while `count` events are committed as fast as
 * PostgreSQL takes them (statements of 1,000 tenant inserts): events per
 * second from the first arrival to the last.
 */
export async function measureFollowRate(baseUrl: string, databaseUrl: string, count: number): Promise<FollowRate> {
  const reader = createTenancyClients({ baseUrl, protocol: "grpc" });
  const controller = new AbortController();
  let received = 0;
  let first = 0;
  let last = 0;
  let ready = false;
  const stream = (async () => {
    try {
      for await (const message of reader.events.watchEvents({ startNow: true }, { signal: controller.signal })) {
        if (message.kind.case === "progress") ready = true;
        if (message.kind.case === "event") {
          if (received === 0) first = Date.now();
          received++;
          last = Date.now();
        }
      }
    } catch {
      // aborted at the end
    }
  })();
  while (!ready) await new Promise((resolve) => setTimeout(resolve, 10));
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const tag = Math.random().toString(36).slice(2, 8);
  try {
    for (let at = 0; at < count; at += 1_000) {
      await client.query(
        `INSERT INTO "Tenants" (tenant_id, name, domain, params)
         SELECT gen_random_uuid(), 'follow ' || $1 || ' ' || i, 'follow-' || $1 || '-' || i || '.bench.example', '{"plan":"pro"}'
           FROM generate_series($2::int, $3::int) i`,
        [tag, at, Math.min(count, at + 1_000) - 1],
      );
    }
  } finally {
    await client.end();
  }
  const until = Date.now() + 30_000;
  while (received < count && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10));
  controller.abort();
  await stream;
  const seconds = Math.max(0.001, (last - first) / 1000);
  return { events: received, seconds, eventsPerSecond: received / seconds };
}

/** The event triggers, switched off to measure the write path without the feed (the code path before it). */
export async function setEventTriggers(databaseUrl: string, enabled: boolean): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const table of ["Tenants", "UserTenantMapping"]) {
      for (const op of ["inserted", "updated", "deleted"]) {
        await client.query(`ALTER TABLE "${table}" ${enabled ? "ENABLE" : "DISABLE"} TRIGGER "${table}_events_${op}"`);
      }
    }
  } finally {
    await client.end();
  }
}
