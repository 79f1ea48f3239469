import pg from "pg";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { EntityManager } from "@mikro-orm/postgresql";
import { connect, headers, nanos, NoRespondersError, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { EventSchema, type Event } from "../../gen/tenancy/v1/event_pb.js";
import type { Logger } from "../logger.js";
import { rowDates } from "../database/rows.js";
import { EVENTS_AFTER_SQL, type EventRow } from "./event.repository.js";
import { toEventMessage } from "./event.mapper.js";
import { EVENTS_CHANNEL } from "./event.hub.js";
import type { EventRelayConfig } from "./event-relay.config.js";

/**
 * The session-level advisory lock that makes one instance the relay's
 * leader (the triggers' sequence lock is 7301126873001). PostgreSQL releases
 * it when the leader's session ends, however it ends.
 */
export const RELAY_LOCK_KEY = "7301126873002";

/** How long the stream the relay creates remembers message ids (the overlap of two leaders lasts seconds). */
export const DUPLICATE_WINDOW_MS = 60 * 60_000;
/** How long the stream the relay creates keeps messages (the feed's default retention). */
export const STREAM_MAX_AGE_MS = 7 * 24 * 60 * 60_000;

export interface EventRelayOptions extends EventRelayConfig {
  /** The database whose feed is relayed; the relay holds one session of its own on it. */
  databaseUrl: string;
  log: Logger;
  /** How often the leader looks for new events without a notification. */
  pollMs?: number;
  /** How often a standby tries to take the lead. */
  leaderPollMs?: number;
  /** Events read, published and then recorded at a time. */
  batchSize?: number;
  /** How long a publish waits for JetStream's acknowledgement. */
  publishTimeoutMs?: number;
  /** Back-off between attempts after a failure (NATS or PostgreSQL away), doubling up to the maximum. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** `<prefix>.<type>.<tenant id>`: the type's own dot makes it two tokens (`tenant.created`). */
export function eventSubject(prefix: string, event: Pick<Event, "type" | "tenantId">): string {
  return `${prefix}.${event.type}.${event.tenantId || "_"}`;
}

/** The CloudEvents attributes in binary content mode: `ce-` headers, the data is the protobuf Event. */
export function cloudEventHeaders(event: Event, source: string): MsgHdrs {
  const h = headers();
  h.set("ce-specversion", "1.0");
  h.set("ce-id", event.id);
  h.set("ce-type", event.type);
  h.set("ce-source", source);
  if (event.time) h.set("ce-time", timestampDate(event.time).toISOString());
  // A schema version has no id of its own: its name@version names it.
  const resource = event.resource;
  const subject = resource.case === "paramsSchema" ? resource.value.paramsSchema : resource.value?.id;
  if (subject) h.set("ce-subject", subject);
  h.set("content-type", "application/protobuf");
  return h;
}

class Stopped extends Error {}

/**
 * Relays the change feed to a JetStream stream, in sequence order, from one
 * instance at a time.
 *
 * Every instance with EVENTS_NATS_URL runs one; they compete for a
 * session-level advisory lock on a connection of their own, and the holder
 * leads: it reads the events after "EventFeed".relayed_through, publishes
 * them one by one (each waits for its acknowledgement, so that a lost
 * message can never be overtaken by the next one: the stream stays in
 * sequence order whatever fails), and records the position after each
 * batch. A new leader resumes after the later of that position and the
 * stream's last event (a leader may die between acknowledgements and the
 * record). Each message's id is the event id, so JetStream also drops what
 * two leaders publish while a lost one has not noticed yet.
 *
 * Any failure ends the term: the session closes (the lock goes with it, so
 * another instance may lead), and the relay tries again after a back-off.
 * The NATS client reconnects by itself in between.
 */
export class EventRelay {
  private nats: NatsConnection | undefined;
  private connecting: Promise<NatsConnection> | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly stopping = new AbortController();
  private wake: (() => void) | undefined;
  private woken = false;
  private readonly date: (value: unknown) => Date;
  private leading = false;
  /** Events JetStream stored, and those it already had (duplicates), for tests and diagnostics. */
  published = 0;
  duplicates = 0;
  /** Terms in which this relay led. */
  terms = 0;

  constructor(
    em: EntityManager,
    private readonly options: EventRelayOptions,
  ) {
    this.date = rowDates(em.getPlatform());
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Stops relaying: the publish under way is abandoned (its event goes out again from the next leader), the lock is released. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    this.wakeUp();
    await this.running;
    // A connection still being made is closed when it is made: shutdown does not wait for it.
    void this.connecting?.then((late) => late.close()).catch(() => {});
    const nats = this.nats;
    this.nats = undefined;
    await nats?.close().catch(() => {});
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const termsBefore = this.terms;
      try {
        await this.term();
      } catch (error) {
        if (this.stopped) break;
        // A term that led was a success until it failed: start the back-off afresh.
        if (this.terms > termsBefore) attempt = 0;
        const delay = Math.min(this.options.retryMaxMs ?? 5_000, (this.options.retryMinMs ?? 100) * 2 ** attempt++);
        this.options.log.warn({ err: error, retryInMs: delay }, `event relay: ${describe(error)}; retrying`);
        await this.pause(delay);
      }
    }
  }

  /**
   * One attempt: NATS and the stream, a session, the lock, then relaying
   * until stopped or something fails. Resolves only when stopped.
   */
  private async term(): Promise<void> {
    const nats = await this.natsConnection();
    const js = jetstream(nats, { timeout: this.options.publishTimeoutMs ?? 5_000 });
    const jsm = await this.ensureStream(nats);

    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      application_name: "tenancy-event-relay",
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
    });
    let lost: Error | undefined;
    client.on("error", (error) => {
      lost ??= error;
      this.wakeUp();
    });
    client.on("end", () => {
      lost ??= new Error("the relay's PostgreSQL session ended");
      this.wakeUp();
    });
    client.on("notification", () => this.wakeUp());
    const check = () => {
      if (this.stopped) throw new Stopped();
      if (lost) throw lost;
    };
    try {
      await this.untilStopped(client.connect());
      let standingBy = false;
      for (;;) {
        check();
        const { rows } = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock($1::bigint) AS locked`, [RELAY_LOCK_KEY]);
        if (rows[0]!.locked) break;
        if (!standingBy) this.options.log.info("event relay: another instance leads; standing by");
        standingBy = true;
        await this.idle(this.options.leaderPollMs ?? 1_000);
      }
      this.leading = true;
      this.terms += 1;
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      const feed = await client.query<{ relayed: string; pruned: string }>(
        `SELECT relayed_through::text AS relayed, pruned_through::text AS pruned FROM "EventFeed"`,
      );
      let position = BigInt(feed.rows[0]?.relayed ?? 0);
      const tail = await this.streamTail(jsm);
      if (tail !== undefined && tail > position) {
        await client.query(`UPDATE "EventFeed" SET relayed_through = greatest(relayed_through, $1::bigint)`, [tail.toString()]);
        position = tail;
      }
      const pruned = BigInt(feed.rows[0]?.pruned ?? 0);
      if (pruned > position) {
        this.options.log.warn(
          { relayedThrough: position.toString(), prunedThrough: pruned.toString() },
          "event relay: events were pruned before they were relayed; the stream misses them",
        );
      }
      this.options.log.info({ after: position.toString(), stream: this.options.stream }, "event relay: leading");
      const batchSize = this.options.batchSize ?? 256;
      for (;;) {
        check();
        this.woken = false;
        const { rows } = await client.query<EventRow>(EVENTS_AFTER_SQL, [position.toString(), batchSize]);
        if (rows.length === 0) {
          await this.idle(this.options.pollMs ?? 1_000);
          continue;
        }
        let acknowledged = position;
        try {
          for (const row of rows) {
            check();
            await this.publish(js, toEventMessage(row, this.date));
            acknowledged = BigInt(row.sequence);
          }
        } finally {
          // What was acknowledged is recorded even when the batch broke off.
          if (acknowledged > position && !lost) {
            await client.query(`UPDATE "EventFeed" SET relayed_through = greatest(relayed_through, $1::bigint)`, [acknowledged.toString()]);
            position = acknowledged;
          }
        }
      }
    } catch (error) {
      if (error instanceof Stopped || this.stopped) return;
      throw error;
    } finally {
      if (this.leading) this.options.log.info("event relay: no longer leading");
      this.leading = false;
      await client.end().catch(() => {});
    }
  }

  private async publish(js: JetStreamClient, event: Event): Promise<void> {
    const subject = eventSubject(this.options.subjectPrefix, event);
    let ack;
    try {
      ack = await this.untilStopped(
        js.publish(subject, toBinary(EventSchema, event), { msgID: event.id, headers: cloudEventHeaders(event, this.options.source) }),
      );
    } catch (error) {
      if (error instanceof NoRespondersError || (error instanceof Error && error.cause instanceof NoRespondersError)) {
        throw new Error(`no JetStream stream takes subject ${subject} (does stream ${this.options.stream} take ${this.options.subjectPrefix}.>?)`, {
          cause: error,
        });
      }
      throw error;
    }
    if (ack.duplicate) this.duplicates += 1;
    else this.published += 1;
  }

  private natsConnection(): Promise<NatsConnection> {
    if (this.nats && !this.nats.isClosed()) return Promise.resolve(this.nats);
    this.connecting ??= connect({
      servers: this.options.servers,
      name: "tenancy-event-relay",
      user: this.options.user,
      pass: this.options.pass,
      token: this.options.token,
      timeout: 5_000,
      // Once connected, the client reconnects by itself, for ever.
      maxReconnectAttempts: -1,
      reconnectTimeWait: this.options.retryMaxMs ?? 5_000,
    })
      .then((nats) => {
        this.nats = nats;
        void this.logStatus(nats);
        return nats;
      })
      .finally(() => (this.connecting = undefined));
    return this.untilStopped(this.connecting);
  }

  private async logStatus(nats: NatsConnection): Promise<void> {
    for await (const status of nats.status()) {
      if (status.type === "disconnect") this.options.log.warn({ server: status.server }, "event relay: NATS connection lost, reconnecting");
      if (status.type === "reconnect") this.options.log.info({ server: status.server }, "event relay: NATS connection restored");
    }
  }

  /** Creates the stream when it is missing; an existing one is used as it is (its operator's settings win). */
  private async ensureStream(nats: NatsConnection): Promise<JetStreamManager> {
    const jsm = await this.untilStopped(jetstreamManager(nats, { timeout: this.options.publishTimeoutMs ?? 5_000 }));
    try {
      await this.untilStopped(jsm.streams.info(this.options.stream));
      return jsm;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    }
    await this.untilStopped(
      jsm.streams.add({
        name: this.options.stream,
        subjects: [`${this.options.subjectPrefix}.>`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        discard: DiscardPolicy.Old,
        max_age: nanos(STREAM_MAX_AGE_MS),
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      }),
    );
    this.options.log.info({ stream: this.options.stream, subjects: `${this.options.subjectPrefix}.>` }, "event relay: created the stream");
    return jsm;
  }

  /**
   * The sequence of the last event in the stream, when its last message
   * under the prefix is one of ours. The stream is in sequence order, so
   * everything up to it is there: a leader that died between acknowledgements
   * and recording them is followed without a single republished message,
   * whatever the stream's duplicate window.
   */
  private async streamTail(jsm: JetStreamManager): Promise<bigint | undefined> {
    const last = await this.untilStopped(jsm.streams.getMessage(this.options.stream, { last_by_subj: `${this.options.subjectPrefix}.>` }));
    if (!last) return undefined;
    try {
      const event = fromBinary(EventSchema, last.data);
      if (last.header?.get("ce-source") === this.options.source && last.header.get("Nats-Msg-Id") === event.id) return event.sequence;
    } catch {
      // Not an Event: someone else's message.
    }
    this.options.log.warn(
      { subject: last.subject, streamSequence: last.seq },
      "event relay: the stream's last message is not one of this relay's; resuming from the recorded position",
    );
    return undefined;
  }

  /** Waits for `promise`, unless the relay is stopped first (then rejects with Stopped; the promise is left to settle). */
  private untilStopped<T>(promise: Promise<T>): Promise<T> {
    if (this.stopped) {
      promise.catch(() => {});
      return Promise.reject(new Stopped());
    }
    return new Promise<T>((resolve, reject) => {
      const onStop = () => reject(new Stopped());
      this.stopping.signal.addEventListener("abort", onStop, { once: true });
      promise.then(
        (value) => {
          this.stopping.signal.removeEventListener("abort", onStop);
          resolve(value);
        },
        (error) => {
          this.stopping.signal.removeEventListener("abort", onStop);
          reject(error);
        },
      );
    });
  }

  /**
   * Waits `ms`, or less if woken (a notification, a lost session, stop). A
   * wake-up that came while nobody waited ends the next wait at once: a
   * notification that arrives between a read and the wait is not lost.
   */
  private idle(ms: number): Promise<void> {
    if (this.stopped || this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      this.wake = done;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  /** The back-off: only stop ends it early. */
  private pause(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const signal = this.stopping.signal;
      const timer = setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
    });
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = undefined;
    if (wake) wake();
    else this.woken = true;
  }
}

function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 300 ? `${message.slice(0, 300)}...` : message;
}
