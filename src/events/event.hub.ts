import pg from "pg";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Event, WatchEventsResponse } from "../../gen/tenancy/v1/event_pb.js";
import type { Logger } from "../logger.js";
import { rowDates } from "../database/rows.js";
import { EVENTS_AFTER_SQL, LATEST_SEQUENCE_SQL, type EventRow } from "./event.repository.js";
import { toEventMessage } from "./event.mapper.js";
import { preEncodedEventResponse } from "./event.wire.js";

/** The channel the event triggers notify, with the transaction's last sequence as payload. */
export const EVENTS_CHANNEL = "tenancy_events";

/**
 * One event as the hub hands it out to every watcher: the wire message,
 * mapped once, its binary response, encoded once on first use, and the row
 * that filters read.
 */
export class FeedEvent {
  readonly sequence: bigint;
  private encoded: WatchEventsResponse | undefined;

  constructor(
    readonly row: EventRow,
    readonly message: Event,
  ) {
    this.sequence = BigInt(row.sequence);
  }

  /** The WatchEventsResponse for binary watchers, shared by all of them (see event.wire.ts). */
  get binaryResponse(): WatchEventsResponse {
    return (this.encoded ??= preEncodedEventResponse(this.message));
  }
}

export interface EventHubOptions {
  /** The database of the LISTEN connection. */
  databaseUrl: string;
  log: Logger;
  /** How often the hub looks for new events even without a notification (a missed one, a reconnect). */
  pollMs?: number;
  /** Events read per query. */
  fetchSize?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

/**
 * A watcher's place in the hub: the events dispatched since it subscribed,
 * up to a bound. Past the bound it is marked overflowed and keeps nothing
 * more: the server never buffers without limit for a slow reader.
 */
export class Subscription {
  private queue: FeedEvent[] = [];
  private wake: (() => void) | undefined;
  overflowed = false;
  closed = false;

  constructor(
    private readonly hub: EventHub,
    /** The hub's head when this subscription started: events after it arrive here. */
    readonly from: bigint,
    private readonly maxBacklog: number,
  ) {}

  /** Called by the hub, synchronously, for every batch it reads. */
  push(events: readonly FeedEvent[]): void {
    if (this.overflowed || this.closed) return;
    if (this.queue.length + events.length > this.maxBacklog) {
      this.overflowed = true;
      this.queue = [];
    } else {
      this.queue.push(...events);
    }
    this.notify();
  }

  /** Ends the subscription (server shutdown): `next` answers with what is left, then `closed`. */
  close(): void {
    this.closed = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /**
   * The events queued so far, waiting up to `timeoutMs` (or until `signal`
   * aborts) when there are none. An empty array means nothing arrived in
   * time.
   */
  async next(timeoutMs: number, signal: AbortSignal): Promise<FeedEvent[]> {
    if (this.queue.length === 0 && !this.overflowed && !this.closed && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        signal.addEventListener("abort", done, { once: true });
        this.wake = done;
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
      });
    }
    const events = this.queue;
    this.queue = [];
    return events;
  }

  /** How many events wait to be sent. */
  get backlog(): number {
    return this.queue.length;
  }

  unsubscribe(): void {
    this.closed = true;
    this.hub.unsubscribe(this);
  }
}

/**
 * Follows the "Events" table for every watcher of this instance: one
 * connection of its own, which LISTENs and reads one query per batch of new
 * events, whose messages are shared by all subscriptions. Wake-ups come from the triggers' NOTIFY; a
 * slow poll catches anything a dropped connection missed.
 *
 * Because sequences are handed out in commit order (see the migration), "the
 * events after my head" is a complete answer each time: no event can later
 * appear behind the head.
 */
export class EventHub {
  private client: pg.Client | undefined;
  private readonly subscriptions = new Set<Subscription>();
  private current = 0n;
  private headKnown = false;
  private started: Promise<void> | undefined;
  private readyResolve!: () => void;
  private readonly ready = new Promise<void>((resolve) => (this.readyResolve = resolve));
  private fetching: Promise<void> | undefined;
  private again = false;
  private poll: NodeJS.Timeout | undefined;
  private reconnect: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  private readonly date: (value: unknown) => Date;

  constructor(
    em: EntityManager,
    private readonly options: EventHubOptions,
  ) {
    this.date = rowDates(em.getPlatform());
  }

  /** The latest sequence read and dispatched. */
  get head(): bigint {
    return this.current;
  }

  /** Starts listening in the background; subscribers wait for the first read of the head. */
  start(): void {
    this.started ??= this.connect();
  }

  /** Resolves once the hub knows the head (the database was reached once). */
  whenReady(): Promise<void> {
    return this.ready;
  }

  get watchers(): number {
    return this.subscriptions.size;
  }

  /** Watchers that fell too far behind and are about to be ended (tests, metrics). */
  get overflowedWatchers(): number {
    let n = 0;
    for (const subscription of this.subscriptions) if (subscription.overflowed) n++;
    return n;
  }

  subscribe(maxBacklog: number): Subscription {
    const subscription = new Subscription(this, this.current, maxBacklog);
    this.subscriptions.add(subscription);
    return subscription;
  }

  unsubscribe(subscription: Subscription): void {
    this.subscriptions.delete(subscription);
  }

  /** Ends every subscription (their streams end, clients resume elsewhere) and stops listening. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    clearTimeout(this.reconnect);
    for (const subscription of this.subscriptions) subscription.close();
    this.subscriptions.clear();
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
    await this.fetching?.catch(() => {});
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      application_name: "tenancy-event-hub",
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
    });
    this.client = client;
    client.on("notification", (message) => {
      if (this.client === client && message.channel === EVENTS_CHANNEL) this.announced(message.payload);
    });
    const drop = (error: unknown) => {
      if (this.client !== client || this.stopped) return;
      this.client = undefined;
      client.end().catch(() => {});
      const delay = Math.min(this.options.reconnectMaxMs ?? 5_000, (this.options.reconnectMinMs ?? 100) * 2 ** this.attempt++);
      this.options.log.warn({ err: error, retryInMs: delay }, "event hub: LISTEN connection lost, reconnecting");
      this.reconnect = setTimeout(() => void this.connect(), delay);
    };
    client.on("error", drop);
    client.on("end", () => drop(new Error("connection ended")));
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      if (this.client !== client) return;
      this.attempt = 0;
      // Everything committed before LISTEN took effect is at or below this
      // head; everything after is announced.
      if (!this.headKnown) {
        const { rows } = await client.query<{ sequence: string }>(LATEST_SEQUENCE_SQL);
        this.current = BigInt(rows[0]!.sequence);
        this.headKnown = true;
        this.readyResolve();
      }
      this.fetchSoon();
      this.poll ??= setInterval(() => this.fetchSoon(), this.options.pollMs ?? 1_000);
      this.poll.unref?.();
    } catch (error) {
      drop(error);
    }
  }

  /**
   * A commit announced the last sequence it wrote (the triggers' NOTIFY
   * payload). With nobody to hand the events to, the head moves there without
   * reading them: every sequence up to it is committed, since sequences are
   * handed out in commit order. Otherwise the new events are read.
   */
  private announced(payload: string | undefined): void {
    if (this.subscriptions.size === 0 && this.fetching === undefined && payload !== undefined && /^\d{1,19}$/.test(payload)) {
      const last = BigInt(payload);
      if (last > this.current) this.current = last;
      return;
    }
    this.fetchSoon();
  }

  /** Reads the new events now, or right after the read in progress. */
  fetchSoon(): void {
    if (this.stopped) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = this.fetchAll()
      .catch((error) => this.options.log.warn({ err: error }, "event hub: reading new events failed; retrying"))
      .finally(() => {
        this.fetching = undefined;
        if (this.again) {
          this.again = false;
          this.fetchSoon();
        }
      });
  }

  private async fetchAll(): Promise<void> {
    const size = this.options.fetchSize ?? 1_000;
    for (;;) {
      // The LISTEN connection also reads: the pool stays for the requests.
      const client = this.client;
      if (this.stopped || !client || !this.headKnown) return;
      if (this.subscriptions.size === 0) {
        // Nobody watches: only the head moves (a poll, a notification missed).
        const { rows } = await client.query<{ sequence: string }>(LATEST_SEQUENCE_SQL);
        // A watcher that subscribed during the query starts from the old
        // head: then the events are read after all, for it.
        if (this.subscriptions.size > 0) continue;
        const head = BigInt(rows[0]!.sequence);
        if (head > this.current) this.current = head;
        return;
      }
      const { rows } = await client.query<EventRow>(EVENTS_AFTER_SQL, [this.current.toString(), size]);
      if (rows.length === 0) return;
      const events = rows.map((row) => new FeedEvent(row, toEventMessage(row, this.date)));
      this.current = events[events.length - 1]!.sequence;
      for (const subscription of this.subscriptions) subscription.push(events);
      if (rows.length < size) return;
    }
  }
}
