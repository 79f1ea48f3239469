import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import pg from "pg";
import { Code } from "@connectrpc/connect";
import http2 from "node:http2";
import { equals, fromBinary, toBinary, create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  createTenancyClients,
  EventSchema,
  WatchEventsRequestSchema,
  WatchEventsResponseSchema,
} from "../../src/client.js";
import { EVENTS_AFTER_SQL, EventRepository } from "../../src/events/event.repository.js";
import { startMaintenance } from "../../src/jobs/maintenance.job.js";
import { createLogger } from "../../src/logger.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, reasonOf } from "../support/errors.js";
import { Watcher } from "../support/watch.js";
import { waitUntil } from "../support/wait.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ watch: { progressIntervalMs: 200 } });
});
afterAll(async () => {
  await server?.close();
});

function unique() {
  const tag = Math.random().toString(36).slice(2, 10);
  return { name: `Watch ${tag}`, domain: `${tag}.watch.example` };
}

async function createWithSequence(clients = server.grpc): Promise<{ id: string; sequence: bigint }> {
  let sequence = "";
  const tenant = await clients.tenants.createTenant({ tenant: unique() }, { onHeader: (h) => (sequence = h.get("tenancy-event-sequence") ?? "") });
  return { id: tenant.id, sequence: BigInt(sequence) };
}

async function latest(): Promise<bigint> {
  return (await server.grpc.events.listEvents({ pageSize: 1 })).latestSequence;
}

describe("WatchEvents", () => {
  for (const protocol of ["grpc", "connect"] as const) {
    it(`replays what the client missed, then follows live changes, with progress when quiet (${protocol})`, async () => {
      const clients = protocol === "grpc" ? server.grpc : server.connect;
      const start = await latest();
      const missed = [await createWithSequence(), await createWithSequence()];
      const watcher = new Watcher(clients, { afterSequence: start });
      await watcher.seen(missed[1]!.sequence);
      const live = await createWithSequence();
      await watcher.seen(live.sequence);
      expect(watcher.events.map((e) => e.tenantId)).toEqual([missed[0]!.id, missed[1]!.id, live.id]);
      expect(watcher.events.map((e) => e.sequence)).toEqual([missed[0]!.sequence, missed[1]!.sequence, live.sequence]);
      // Quiet: progress messages carry the position on.
      const progressBefore = watcher.progress.length;
      await watcher.until(() => watcher.progress.length >= progressBefore + 2);
      expect(watcher.progress[watcher.progress.length - 1]).toBeGreaterThanOrEqual(live.sequence);
      await watcher.close();
    });
  }

  it("sends the same live event to binary and JSON watchers of every protocol as the audit log has it", async () => {
    // Binary watchers get a response encoded once for all of them
    // (src/events/event.wire.ts), JSON watchers the message: both must be the event.
    const baseUrl = server.baseUrl;
    const watchers = {
      grpc: new Watcher(server.grpc, { startNow: true }),
      connectJson: new Watcher(server.connect, { startNow: true }),
      connectBinary: new Watcher(createTenancyClients({ baseUrl, protocol: "connect", httpVersion: "2" }), { startNow: true }),
      grpcWeb: new Watcher(createTenancyClients({ baseUrl, protocol: "grpc-web" }), { startNow: true }),
      grpcWebJson: new Watcher(createTenancyClients({ baseUrl, protocol: "grpc-web", useBinaryFormat: false }), { startNow: true }),
    };
    for (const watcher of Object.values(watchers)) await watcher.until(() => watcher.progress.length > 0);
    const tenant = await createWithSequence();
    let sequence = "";
    await server.grpc.tenants.updateTenant(
      { tenant: { id: tenant.id, params: { theme: { color: "#123456", dark: true }, seats: 12, tags: ["a", "b"] } }, updateMask: { paths: ["params"] } },
      { onHeader: (h) => (sequence = h.get("tenancy-event-sequence")!) },
    );
    const logged = (await server.grpc.events.listEvents({ tenantId: tenant.id, pageSize: 10 })).events;
    expect(logged.map((e) => e.type)).toEqual(["tenant.created", "tenant.updated"]);
    for (const [name, watcher] of Object.entries(watchers)) {
      await watcher.seen(BigInt(sequence));
      const seen = watcher.events.filter((e) => e.tenantId === tenant.id);
      expect(seen.map((e) => e.type), name).toEqual(["tenant.created", "tenant.updated"]);
      for (const event of seen) {
        const expected = logged.find((e) => e.sequence === event.sequence)!;
        expect(equals(EventSchema, event, expected), `${name}: ${event.type}`).toBe(true);
      }
      await watcher.close();
    }
  });

  it("reads no events while nobody watches (its head follows the commits), and a watcher that comes later misses none", async () => {
    await waitUntil(() => server.eventHub.watchers === 0, "no watcher left from earlier tests");
    const query = vi.spyOn(pg.Client.prototype, "query");
    const eventReads = () => query.mock.calls.filter((call) => call[0] === EVENTS_AFTER_SQL).length;
    try {
      const before = server.eventHub.head;
      const written = [await createWithSequence(), await createWithSequence(), await createWithSequence()];
      await waitUntil(() => server.eventHub.head >= written[2]!.sequence, "the hub's head at the last write");
      expect(eventReads()).toBe(0);

      const watcher = new Watcher(server.grpc, { afterSequence: before });
      await watcher.seen(written[2]!.sequence);
      const live = await createWithSequence();
      await watcher.seen(live.sequence);
      expect(watcher.events.map((e) => e.sequence)).toEqual([...written, live].map((w) => w.sequence));
      expect(eventReads(), "with a watcher, the hub reads the new events").toBeGreaterThan(0);
      await watcher.close();
    } finally {
      query.mockRestore();
    }
  });

  it("starts at now with a progress message, and filters by tenant and type", async () => {
    const tenant = await createWithSequence();
    const now = new Watcher(server.grpc, { startNow: true });
    const filtered = new Watcher(server.connect, { startNow: true, tenantId: tenant.id, types: ["tenant.updated"] });
    await now.until(() => now.progress.length > 0);
    await filtered.until(() => filtered.progress.length > 0);
    expect(now.progress[0]).toBeGreaterThanOrEqual(tenant.sequence);
    expect(now.events).toEqual([]);

    const other = await createWithSequence();
    let sequence = "";
    await server.grpc.tenants.updateTenant(
      { tenant: { id: tenant.id, params: { a: 1 } }, updateMask: { paths: ["params.a"] } },
      { onHeader: (h) => (sequence = h.get("tenancy-event-sequence")!) },
    );
    await now.seen(BigInt(sequence));
    await filtered.seen(BigInt(sequence));
    expect(now.events.map((e) => [e.type, e.tenantId])).toEqual([
      ["tenant.created", other.id],
      ["tenant.updated", tenant.id],
    ]);
    expect(filtered.events.map((e) => [e.type, e.tenantId, e.changedFields?.paths])).toEqual([["tenant.updated", tenant.id, ["params.a"]]]);
    await Promise.all([now.close(), filtered.close()]);
  });

  it("refuses bad requests", async () => {
    const cases: Array<[MessageInitShape<typeof WatchEventsRequestSchema>, string[]]> = [
      [{ afterSequence: -1n }, ["after_sequence"]],
      [{ afterSequence: 3n, startNow: true }, ["start_now"]],
      [{ tenantId: "nope", types: ["tenant.gone"] }, ["tenant_id", "types[0]"]],
    ];
    for (const [request, fields] of cases) {
      const watcher = new Watcher(server.grpc, request);
      await watcher.done;
      expect(watcher.error && describeError(watcher.error)).toEqual({ code: "InvalidArgument", fields });
    }
  });

  it("resumes after a dropped connection without losing or repeating an event", async () => {
    const start = await latest();
    const first = new Watcher(server.grpc, { afterSequence: start });
    const a = await createWithSequence();
    await first.seen(a.sequence);
    await first.close(); // the connection drops
    const b = await createWithSequence();
    const c = await createWithSequence();
    const resumed = new Watcher(createTenancyClients({ baseUrl: server.baseUrl, protocol: "grpc" }), { afterSequence: first.position });
    await resumed.seen(c.sequence);
    expect([...first.events, ...resumed.events].map((e) => e.tenantId)).toEqual([a.id, b.id, c.id]);
    await resumed.close();
  });
});

describe("a service restart, a second instance, and shutdown", () => {
  it("ends watch streams at shutdown with UNAVAILABLE, promptly, and the client resumes on another instance", async () => {
    const first = await startTestServer({ databaseUrl: server.databaseUrl, watch: { progressIntervalMs: 200 } });
    const second = await startTestServer({ databaseUrl: server.databaseUrl, watch: { progressIntervalMs: 200 } });
    try {
      const start = await latest();
      const watcher = new Watcher(first.grpc, { afterSequence: start });
      const a = await createWithSequence(second.grpc); // written through the other instance
      await watcher.seen(a.sequence);
      const closing = Date.now();
      await first.close();
      await watcher.done;
      expect(watcher.error?.code).toBe(Code.Unavailable);
      // Well within the grace period (1 s in tests): the stream did not hold the shutdown.
      expect(Date.now() - closing).toBeLessThan(900);
      const b = await createWithSequence(second.grpc);
      const resumed = new Watcher(second.grpc, { afterSequence: watcher.position });
      await resumed.seen(b.sequence);
      expect([...watcher.events, ...resumed.events].map((e) => e.tenantId)).toEqual([a.id, b.id]);
      await resumed.close();
    } finally {
      await second.close();
    }
  });
});

describe("a slow watcher", () => {
  it("is ended with RESOURCE_EXHAUSTED once its backlog passes the bound; the server keeps nothing more for it", async () => {
    const slow = await startTestServer({
      databaseUrl: server.databaseUrl,
      watch: { maxBacklog: 50, progressIntervalMs: 60_000 },
      eventHub: { fetchSize: 20 },
    });
    const session = http2.connect(slow.baseUrl);
    try {
      // A raw gRPC call whose response nobody reads: HTTP/2 flow control
      // stops the server's writes once the stream's window is full.
      const start = await latest();
      const body = toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { afterSequence: start }));
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      const stream = session.request({
        ":method": "POST",
        ":path": "/tenancy.v1.EventService/WatchEvents",
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.end(frame);
      stream.pause();
      await new Promise((resolve) => stream.once("response", resolve));
      // Many events in one statement, far more than the window and the backlog.
      await server.sql.query(
        `INSERT INTO "Tenants" (tenant_id, name, domain, params)
         SELECT gen_random_uuid(), 'slow ' || i || ' ' || $1, 'slow-' || i || '-' || $1 || '.example', jsonb_build_object('pad', repeat('x', 200))
           FROM generate_series(1, 3000) i`,
        [Math.random().toString(36).slice(2, 8)],
      );
      await waitFor(() => slow.eventHub.overflowedWatchers === 1);
      // Reading again: what was already on its way, then the end of the stream.
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
      let received = Buffer.alloc(0);
      stream.on("data", (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
      stream.resume();
      const status = await trailers;
      expect(status["grpc-status"]).toBe(String(Code.ResourceExhausted));
      expect(decodeURIComponent(String(status["grpc-message"]))).toMatch(/read too slowly.*resume after sequence/);
      expect(status["grpc-status-details-bin"], "ErrorInfo WATCHER_TOO_SLOW").toBeDefined();
      expect(Buffer.from(String(status["grpc-status-details-bin"]), "base64").toString("latin1")).toContain("WATCHER_TOO_SLOW");
      // Less than was written: the server dropped what the watcher could not take.
      const messages = [];
      for (let at = 0; at + 5 <= received.length; ) {
        const length = received.readUInt32BE(at + 1);
        messages.push(fromBinary(WatchEventsResponseSchema, received.subarray(at + 5, at + 5 + length)));
        at += 5 + length;
      }
      expect(messages.length).toBeGreaterThan(0);
      expect(messages.length).toBeLessThan(3000);
      expect(slow.eventHub.watchers).toBe(0);
    } finally {
      session.close();
      await slow.close();
    }
  });
});

describe("a watcher that goes away", () => {
  it("mid-write leaves no error behind (the stream's failed write is a cancellation, not INTERNAL)", async () => {
    const own = await startTestServer({ databaseUrl: server.databaseUrl, watch: { progressIntervalMs: 60_000 }, eventHub: { fetchSize: 20 } });
    try {
      const session = http2.connect(own.baseUrl);
      const body = toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { startNow: true }));
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      const stream = session.request({ ":method": "POST", ":path": "/tenancy.v1.EventService/WatchEvents", "content-type": "application/grpc", te: "trailers" });
      stream.end(frame);
      stream.pause();
      await new Promise((resolve) => stream.once("response", resolve));
      await server.sql.query(
        `INSERT INTO "Tenants" (tenant_id, name, domain, params)
         SELECT gen_random_uuid(), 'gone ' || i || ' ' || $1, 'gone-' || i || '-' || $1 || '.example', jsonb_build_object('pad', repeat('x', 200))
           FROM generate_series(1, 1000) i`,
        [Math.random().toString(36).slice(2, 8)],
      );
      // The server is now blocked on the full window; the client vanishes.
      await waitFor(() => own.eventHub.watchers === 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      // As a client's abort does: RST_STREAM(CANCEL) under a write in progress.
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor(() => own.eventHub.watchers === 0);
      session.destroy();
    } finally {
      // close() fails the test if the server logged an internal error.
      await own.close();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("retention", () => {
  it("answers EVENTS_EXPIRED to a watcher that resumes before the pruned mark", async () => {
    const a = await createWithSequence();
    // The maintenance job prunes what is older than the retention (here: everything up to now).
    const job = startMaintenance(server.orm, createLogger("silent"), { intervalMs: 50, requestIdRetentionMs: 86_400_000, eventRetentionMs: 0 });
    const events = new EventRepository(server.orm.em.fork());
    try {
      for (let i = 0; i < 200 && (await events.prunedThrough()) < a.sequence; i++) await new Promise((r) => setTimeout(r, 25));
    } finally {
      await job.stop();
    }
    expect(await events.prunedThrough()).toBeGreaterThanOrEqual(a.sequence);
    expect((await server.grpc.events.listEvents({ pageSize: 1000 })).events.filter((e) => e.sequence <= a.sequence)).toEqual([]);
    const stale = new Watcher(server.grpc, { afterSequence: a.sequence - 1n });
    await stale.done;
    expect(stale.error?.code).toBe(Code.FailedPrecondition);
    expect(reasonOf(stale.error!)).toBe("EVENTS_EXPIRED");
    // From the new position, watching works.
    const fresh = new Watcher(server.grpc, { afterSequence: await latest() });
    const b = await createWithSequence();
    await fresh.seen(b.sequence);
    expect(fresh.events.map((e) => e.tenantId)).toEqual([b.id]);
    await fresh.close();
  });
});
