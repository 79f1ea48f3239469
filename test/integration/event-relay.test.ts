import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { equals, fromBinary } from "@bufbuild/protobuf";
import { AckPolicy, jetstream, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { EventSchema, Tenant_State as State, type Event } from "../../src/client.js";
import { EventRelay, type EventRelayOptions } from "../../src/events/event.relay.js";
import { EventRepository } from "../../src/events/event.repository.js";
import { createLogger } from "../../src/logger.js";
import { startMaintenance } from "../../src/jobs/maintenance.job.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { connectNats, eventually, freePort, PrivateNatsServer, privateStream, readStream, NATS_URL, type RelayedMessage } from "../support/nats.js";

const SOURCE = "https://tenancy.test/events";

/** Short timings, so that take-overs and retries happen within a test. */
function relayOptions(target: { stream: string; subjectPrefix: string }, url = NATS_URL): Omit<EventRelayOptions, "databaseUrl" | "log"> {
  return { servers: [url], ...target, source: SOURCE, pollMs: 500, leaderPollMs: 100, retryMinMs: 20, retryMaxMs: 200 };
}

let nats: NatsConnection;
let jsm: JetStreamManager;
const streams: string[] = [];

beforeAll(async () => {
  ({ nats, jsm } = await connectNats());
});
afterAll(async () => {
  for (const stream of streams) await jsm?.streams.delete(stream).catch(() => {});
  await nats?.close();
});

function target() {
  const t = privateStream();
  streams.push(t.stream);
  return t;
}

function unique() {
  const tag = Math.random().toString(36).slice(2, 10);
  return { name: `Relay ${tag}`, domain: `${tag}.relay.example` };
}

async function feedSequences(server: TestServer): Promise<bigint[]> {
  const { rows } = await server.sql.query<{ s: string }>(`SELECT sequence::text AS s FROM "Events" ORDER BY sequence`);
  return rows.map((row) => BigInt(row.s));
}

async function relayedThrough(server: TestServer): Promise<bigint> {
  const { rows } = await server.sql.query<{ relayed: string }>(`SELECT relayed_through::text AS relayed FROM "EventFeed"`);
  return BigInt(rows[0]!.relayed);
}

async function latestSequence(server: TestServer): Promise<bigint> {
  const { rows } = await server.sql.query<{ latest: string | null }>(`SELECT max(sequence)::text AS latest FROM "Events"`);
  return BigInt(rows[0]!.latest ?? 0);
}

/** Waits until the relay recorded the feed's latest event, then reads the stream. */
async function relayedEverything(server: TestServer, stream: string, timeoutMs = 20_000): Promise<RelayedMessage[]> {
  const latest = await latestSequence(server);
  await eventually(async () => (await relayedThrough(server)) >= latest, `the relay recorded sequence ${latest}`, timeoutMs);
  return readStream(jsm, stream);
}

/** The stream holds every event of the feed, once each, in sequence order. */
async function expectExactlyTheFeed(server: TestServer, messages: RelayedMessage[]): Promise<void> {
  const feed = await feedSequences(server);
  expect(messages.map((m) => m.event.sequence)).toEqual(feed);
  expect(new Set(messages.map((m) => m.event.id)).size).toBe(messages.length);
  expect(messages.map((m) => m.streamSequence)).toEqual(messages.map((_, i) => messages[0]!.streamSequence + i));
}

/** A relay of its own on a test server's database, its log lines collected. */
function standaloneRelay(server: TestServer, to: { stream: string; subjectPrefix: string }): { relay: EventRelay; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n")) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const relay = new EventRelay(server.orm.em, { ...relayOptions(to), databaseUrl: server.databaseUrl, log: createLogger("info", sink) });
  return { relay, lines };
}

/** Writes tenants from `writers` concurrent callers until stopped; returns how many were acknowledged. */
function keepWriting(server: TestServer, writers = 4): { stop(): Promise<number> } {
  let stopping = false;
  let written = 0;
  const loops = Array.from({ length: writers }, async () => {
    while (!stopping) {
      await server.grpc.tenants.createTenant({ tenant: unique() });
      written += 1;
    }
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
      return written;
    },
  };
}

describe("the NATS JetStream relay", () => {
  let server: TestServer;
  const main = target();
  beforeAll(async () => {
    server = await startTestServer({ eventRelay: relayOptions(main) });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("relays every event once, in sequence order, with its subject, CloudEvents headers and protobuf payload", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { plan: "pro" } } });
    await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "team" } }, updateMask: { paths: ["params.plan"] } });
    await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, state: State.SUSPENDED }, updateMask: { paths: ["state"] } });
    await server.grpc.tenants.updateTenant({ tenant: { id: tenant.id, state: State.ACTIVE }, updateMask: { paths: ["state"] } });
    const admin = await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: ["admin"] } });
    const member = await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    await server.grpc.memberships.updateMembership({ membership: { id: member.id, roles: ["viewer"] }, updateMask: { paths: ["roles"] } });
    await server.grpc.memberships.deleteMembership({ id: member.id });
    await server.grpc.tenants.deleteTenant({ id: tenant.id, force: true });
    await server.grpc.tenants.undeleteTenant({ id: tenant.id });
    const other = await server.grpc.tenants.createTenant({ tenant: unique() });
    await server.grpc.tenants.deleteTenant({ id: other.id });
    await server.grpc.tenants.purgeTenant({ id: other.id });
    // Concurrent creates: coalesced into shared statements, many events per transaction.
    await Promise.all(Array.from({ length: 60 }, () => server.grpc.tenants.createTenant({ tenant: unique() })));

    const messages = await relayedEverything(server, main.stream);
    await expectExactlyTheFeed(server, messages);
    const listed: Event[] = [];
    let pageToken = "";
    do {
      const page = await server.grpc.events.listEvents({ pageSize: 1000, pageToken });
      listed.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(messages).toHaveLength(listed.length);
    expect(listed).toHaveLength(14 + 60);
    for (const [i, message] of messages.entries()) {
      const event = listed[i]!;
      expect(equals(EventSchema, message.event, event), `message ${i} is the event ListEvents shows`).toBe(true);
      expect(message.subject).toBe(`${main.subjectPrefix}.${event.type}.${event.tenantId}`);
      const h = message.headers;
      expect({
        specversion: h.get("ce-specversion"),
        id: h.get("ce-id"),
        type: h.get("ce-type"),
        source: h.get("ce-source"),
        time: h.get("ce-time"),
        subject: h.get("ce-subject"),
        contentType: h.get("content-type"),
        msgId: h.get("Nats-Msg-Id"),
      }).toEqual({
        specversion: "1.0",
        id: event.id,
        type: event.type,
        source: SOURCE,
        time: new Date(Number(event.time!.seconds) * 1000 + event.time!.nanos / 1e6).toISOString(),
        subject: event.resource.case === "tenant" || event.resource.case === "membership" ? event.resource.value.id : undefined,
        contentType: "application/protobuf",
        msgId: event.id,
      });
    }
    expect(messages.slice(0, 13).map((m) => m.subject.slice(main.subjectPrefix.length + 1))).toEqual([
      `tenant.created.${tenant.id}`,
      `tenant.updated.${tenant.id}`,
      `tenant.suspended.${tenant.id}`,
      `tenant.activated.${tenant.id}`,
      `membership.created.${tenant.id}`,
      `membership.created.${tenant.id}`,
      `membership.updated.${tenant.id}`,
      `membership.deleted.${tenant.id}`,
      `membership.deleted.${tenant.id}`, // the forced delete removes the admin's membership first
      `tenant.deleted.${tenant.id}`,
      `tenant.undeleted.${tenant.id}`,
      `tenant.created.${other.id}`,
      `tenant.deleted.${other.id}`,
    ]);
    const ninth = messages[8]!.event.resource;
    expect(ninth.case === "membership" ? ninth.value.id : undefined).toBe(admin.id);
    expect(server.eventRelay!.isLeader).toBe(true);
  });

  it("serves durable consumers that filter by subject wildcards, as the README shows", async () => {
    const latest = await latestSequence(server);
    const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
    const membership = await server.grpc.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    await server.grpc.memberships.deleteMembership({ id: membership.id });
    await server.grpc.tenants.createTenant({ tenant: unique() });
    await relayedEverything(server, main.stream);

    const js = jetstream(nats);
    const stored = await readStream(jsm, main.stream);
    /** Reads a new durable consumer to the end: it delivers exactly the stream's messages whose subjects match. */
    const read = async (durable: string, filter: string, matches: (subject: string) => boolean): Promise<Event[]> => {
      await jsm.consumers.add(main.stream, { durable_name: durable, ack_policy: AckPolicy.Explicit, filter_subject: filter, max_ack_pending: 1 });
      const consumer = await js.consumers.get(main.stream, durable);
      const expected = stored.filter((m) => matches(m.subject)).map((m) => m.event.sequence);
      const events: Event[] = [];
      const messages = await consumer.consume();
      const timeout = setTimeout(() => messages.stop(), 10_000);
      for await (const message of messages) {
        events.push(fromBinary(EventSchema, message.data));
        message.ack();
        if (events.length === expected.length) break;
      }
      clearTimeout(timeout);
      expect(events.map((e) => e.sequence)).toEqual(expected);
      expect((await consumer.info()).num_pending).toBe(0);
      return events.filter((e) => e.sequence > latest);
    };
    const prefix = `${main.subjectPrefix}.`;
    const memberships = await read("memberships", `${prefix}membership.>`, (s) => s.startsWith(`${prefix}membership.`));
    expect(memberships.map((e) => [e.type, e.resource.case === "membership" ? e.resource.value.id : undefined])).toEqual([
      ["membership.created", membership.id],
      ["membership.deleted", membership.id],
    ]);
    const ofTenant = await read("one-tenant", `${prefix}*.*.${tenant.id}`, (s) => s.endsWith(`.${tenant.id}`));
    expect(ofTenant.map((e) => e.type)).toEqual(["tenant.created", "membership.created", "membership.deleted"]);
  });

  it("follows a leader that died between acknowledgements and their record from the stream's last event: nothing twice", async () => {
    await server.eventRelay!.stop();
    const before = await readStream(jsm, main.stream);
    const relayed = await relayedThrough(server);
    expect(relayed).toBe(before[before.length - 1]!.event.sequence);
    // As if the leader died after the acknowledgements of the last 20 events, before recording them.
    await server.sql.query(`UPDATE "EventFeed" SET relayed_through = $1`, [before[before.length - 21]!.event.sequence.toString()]);

    const next = standaloneRelay(server, main);
    next.relay.start();
    try {
      await eventually(async () => (await relayedThrough(server)) === relayed, "the new leader recorded the stream's last event");
      const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
      const after = await relayedEverything(server, main.stream);
      expect(after).toHaveLength(before.length + 1);
      expect(after[after.length - 1]!.event.tenantId).toBe(tenant.id);
      await expectExactlyTheFeed(server, after);
      expect({ published: next.relay.published, duplicates: next.relay.duplicates }).toEqual({ published: 1, duplicates: 0 });
    } finally {
      await next.relay.stop();
    }
  });

  it("republishes from its record when the stream's last message is not its own, and JetStream drops the copies by Nats-Msg-Id", async () => {
    const before = await readStream(jsm, main.stream);
    const relayed = await relayedThrough(server);
    const foreign = `${main.subjectPrefix}.other.thing`;
    await jetstream(nats).publish(foreign, new TextEncoder().encode("not an event"));
    await server.sql.query(`UPDATE "EventFeed" SET relayed_through = $1`, [before[before.length - 21]!.event.sequence.toString()]);

    const next = standaloneRelay(server, main);
    next.relay.start();
    try {
      await eventually(async () => (await relayedThrough(server)) === relayed, "the new leader caught up");
      expect({ published: next.relay.published, duplicates: next.relay.duplicates }).toEqual({ published: 0, duplicates: 20 });
      expect(next.lines.some((line) => String(line.msg).includes("is not one of this relay's"))).toBe(true);
      const after = await readStream(jsm, main.stream, (subject) => subject !== foreign);
      expect(after.map((m) => m.event.id)).toEqual(before.map((m) => m.event.id));
    } finally {
      await next.relay.stop();
    }
  });
});

describe("without EVENTS_NATS_URL", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("relays nothing: no relay, no relay session, no position", async () => {
    await server.grpc.tenants.createTenant({ tenant: unique() });
    expect(server.eventRelay).toBeUndefined();
    const { rows } = await server.sql.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'tenancy-event-relay' AND datname = current_database()`);
    expect(rows).toEqual([]);
    expect(await relayedThrough(server)).toBe(0n);
  });

  it("prunes only relayed events when a relay is configured, and every expired event when not", async () => {
    for (let i = 0; i < 4; i++) await server.grpc.tenants.createTenant({ tenant: unique() });
    const sequences = await feedSequences(server);
    const keptFrom = sequences[2]!;
    await server.sql.query(`UPDATE "EventFeed" SET relayed_through = $1`, [sequences[1]!.toString()]);
    const repository = new EventRepository(server.orm.em.fork());
    const future = new Date(Date.now() + 60_000);
    expect(await repository.prune(future, 10_000, true)).toBe(2);
    expect(await feedSequences(server)).toEqual(sequences.filter((s) => s >= keptFrom));
    expect(await repository.prunedThrough()).toBe(sequences[1]);
    expect(await repository.prune(future)).toBe(sequences.length - 2);
    expect(await feedSequences(server)).toEqual([]);
  });

  it("the maintenance job keeps the events the relay has not published", async () => {
    for (let i = 0; i < 4; i++) await server.grpc.tenants.createTenant({ tenant: unique() });
    const sequences = await feedSequences(server);
    const relayed = sequences[1]!;
    await server.sql.query(`UPDATE "EventFeed" SET relayed_through = $1`, [relayed.toString()]);
    const maintenance = startMaintenance(server.orm, createLogger("silent"), {
      intervalMs: 50,
      requestIdRetentionMs: 24 * 3600_000,
      eventRetentionMs: 0,
      keepUnrelayedEvents: true,
    });
    try {
      await eventually(async () => (await new EventRepository(server.orm.em.fork()).prunedThrough()) === relayed, "the relayed events were pruned");
    } finally {
      await maintenance.stop();
    }
    // The tick that pruned through the relayed events would have pruned the rest too.
    expect(await feedSequences(server)).toEqual(sequences.slice(2));
  });
});

describe("a NATS that cannot be reached", () => {
  it("is retried and logged while the service serves", async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const server = await startTestServer({ eventRelay: relayOptions(target(), url) });
    try {
      const failures = () => server.logs.filter((line) => String(line.msg).startsWith("event relay:") && line.level === 40);
      await eventually(() => failures().length >= 3, "the relay logged three failed attempts");
      expect(failures()[0]).toMatchObject({ retryInMs: expect.any(Number) });
      const tenant = await server.grpc.tenants.createTenant({ tenant: unique() });
      expect((await server.connect.tenants.getTenant({ id: tenant.id })).id).toBe(tenant.id);
      expect(server.health.state).toBe("SERVING");
      expect(server.eventRelay!.isLeader).toBe(false);
      expect(await relayedThrough(server)).toBe(0n);
    } finally {
      await server.close();
    }
  });
});

describe("across a NATS restart", () => {
  let nats2: PrivateNatsServer;
  let server: TestServer;
  const own = privateStream();
  beforeAll(async () => {
    nats2 = await PrivateNatsServer.create();
    server = await startTestServer({ eventRelay: relayOptions(own, nats2.url) });
  });
  afterAll(async () => {
    await server?.close();
    await nats2?.destroy();
  });

  it("every event reaches the stream once, in order, also those written while NATS was down", async () => {
    const writing = keepWriting(server);
    await eventually(async () => (await relayedThrough(server)) >= 20n, "some events were relayed");
    await nats2.kill();
    const atKill = await relayedThrough(server);
    await eventually(
      () => server.logs.some((line) => line.level === 40 && String(line.msg).startsWith("event relay:")),
      "the relay noticed that NATS is gone",
    );
    // The service keeps serving writes without NATS.
    await eventually(async () => (await latestSequence(server)) >= atKill + 20n, "writes went on while NATS was down");
    await nats2.start();
    await eventually(async () => (await relayedThrough(server)) >= atKill + 40n, "the relay went on after the restart");
    const written = await writing.stop();
    expect(written).toBeGreaterThan(0);

    const { nats: client, jsm: manager } = await connectNats(nats2.url);
    try {
      const latest = await latestSequence(server);
      await eventually(async () => (await relayedThrough(server)) >= latest, "the relay caught up");
      const messages = await readStream(manager, own.stream);
      await expectExactlyTheFeed(server, messages);
      expect(messages.length).toBeGreaterThanOrEqual(written);
    } finally {
      await client.close();
    }
  }, 60_000);
});

/** A real service process (`npm run dev`), its log lines collected. */
class ServiceProcess {
  readonly lines: Record<string, unknown>[] = [];
  readonly child: ChildProcess;
  readonly listening: Promise<string>;

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      env: { ...process.env, PORT: "0", LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    this.child.stderr!.on("data", (d) => (stderr += d));
    this.listening = new Promise<string>((resolve, reject) => {
      let buffer = "";
      this.child.stdout!.on("data", (chunk) => {
        buffer += chunk;
        let i;
        while ((i = buffer.indexOf("\n")) >= 0) {
          const line = JSON.parse(buffer.slice(0, i));
          buffer = buffer.slice(i + 1);
          this.lines.push(line);
          if (typeof line.address === "string" && String(line.msg).includes("listening")) resolve(line.address);
        }
      });
      this.child.once("exit", (code) => reject(new Error(`exited with ${code} before listening: ${stderr}`)));
    });
  }

  leadership(): Record<string, unknown>[] {
    return this.lines.filter((line) => line.msg === "event relay: leading");
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.kill(signal);
    await exited;
  }
}

describe("one leader at a time, across a crash", () => {
  let server: TestServer;
  const own = target();
  const processes: ServiceProcess[] = [];
  beforeAll(async () => {
    // Writes go through this in-process server, which relays nothing itself.
    server = await startTestServer();
  });
  afterAll(async () => {
    for (const p of processes) await p.kill("SIGKILL");
    await server?.close();
  });

  it("another instance takes over when the leader dies mid-stream: no gap, no duplicate", async () => {
    const env = {
      DATABASE_URL: server.databaseUrl,
      EVENTS_NATS_URL: NATS_URL,
      EVENTS_NATS_STREAM: own.stream,
      EVENTS_NATS_SUBJECT_PREFIX: own.subjectPrefix,
    };
    processes.push(new ServiceProcess(env), new ServiceProcess(env));
    await Promise.all(processes.map((p) => p.listening));
    await eventually(() => processes.some((p) => p.leadership().length > 0), "one instance leads");

    const writing = keepWriting(server);
    await eventually(async () => (await relayedThrough(server)) >= 30n, "the leader relayed some events");
    const leaders = processes.filter((p) => p.leadership().length > 0);
    expect(leaders).toHaveLength(1);
    const [leader] = leaders;
    const follower = processes.find((p) => p !== leader)!;
    await eventually(() => follower.lines.some((line) => line.msg === "event relay: another instance leads; standing by"), "the other instance stands by");
    // Killed without any cleanup: its session, and with it the lock, ends with the process.
    await leader!.kill("SIGKILL");
    await eventually(() => follower.leadership().length > 0, "the other instance took over");
    const takeover = follower.leadership()[0]!;
    await eventually(async () => (await relayedThrough(server)) >= BigInt(String(takeover.after)) + 30n, "the new leader relayed more events");
    await writing.stop();

    const messages = await relayedEverything(server, own.stream);
    await expectExactlyTheFeed(server, messages);
    // The dead leader had relayed some, the new one the rest.
    const resumedAfter = BigInt(String(takeover.after));
    expect(resumedAfter).toBeGreaterThan(0n);
    expect(resumedAfter).toBeLessThan(messages[messages.length - 1]!.event.sequence);
    await follower.kill("SIGTERM");
    expect(follower.lines.some((line) => line.msg === "event relay: no longer leading")).toBe(true);
  }, 90_000);
});
