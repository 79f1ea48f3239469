/**
 * The directory's logic against an in-memory feed that behaves as the
 * EventService contract says (list position, replay after a sequence,
 * progress after catching up, EVENTS_EXPIRED), with failures injected at
 * will. The same behaviours against the real service are in
 * test/integration/tenant-directory.test.ts.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  TenantDirectory,
  TenantDirectoryClosedError,
  TenantDirectoryNotReadyError,
  TenantDirectoryStaleError,
  type TenantDirectoryChange,
  type TenantDirectoryOptions,
  type TenantDirectorySource,
} from "../../clients/node/src/index.js";
import { EventSchema, WatchEventsResponseSchema, type Event, type WatchEventsResponse } from "../../gen/tenancy/v1/event_pb.js";
import { TenantSchema, Tenant_State as State, type Tenant } from "../../gen/tenancy/v1/tenant_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

const expired = () =>
  new ConnectError("events after this sequence were pruned", Code.FailedPrecondition, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "EVENTS_EXPIRED", domain: "tenancy.v1" } },
  ]);

/** One open WatchEvents stream of the fake: a queue the feed pushes to. */
class FakeStream {
  private queue: Array<WatchEventsResponse | Error> = [];
  private wake: (() => void) | undefined;
  push(item: WatchEventsResponse | Error): void {
    this.queue.push(item);
    this.wake?.();
  }
  async *messages(signal: AbortSignal): AsyncGenerator<WatchEventsResponse> {
    const aborted = new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    aborted.catch(() => {});
    for (;;) {
      while (this.queue.length === 0) {
        await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), aborted]);
      }
      const item = this.queue.shift()!;
      if (item instanceof Error) throw item;
      yield item;
    }
  }
}

let nextId = 1;
const uuid = () => `00000000-0000-4000-8000-${String(nextId++).padStart(12, "0")}`;

/** The service as the directory sees it: tenants, an event log, streams. */
class FakeFeed {
  readonly tenants = new Map<string, Tenant>();
  readonly log: Event[] = [];
  /** Events below this sequence were pruned. */
  oldest = 1n;
  sequence = 0n;
  /** Send a progress message once a stream has replayed what it asked for. */
  progressAfterReplay = true;
  readonly streams = new Set<FakeStream>();
  readonly watchedAfter: bigint[] = [];
  listCalls = 0;
  rpcCalls: string[] = [];
  /** Runs before each ListTenants page is answered (to write between pages). */
  beforePage: ((page: number) => void) | undefined;

  tenant(name: string, domain: string, fields: Partial<Tenant> = {}): Tenant {
    return create(TenantSchema, { id: uuid(), name, domain, state: State.ACTIVE, etag: '"1"', ...(fields as MessageInitShape<typeof TenantSchema>) });
  }

  /** Commits a change: the tenant's new state (version bumped) and its event. */
  write(type: string, tenant: Tenant, changes: Partial<Tenant> = {}): Event {
    const previous = this.tenants.get(tenant.id);
    const version = previous ? Number(previous.etag.slice(1, -1)) + 1 : 1;
    const next = create(TenantSchema, { ...(previous ?? tenant), ...changes, etag: `"${version}"` });
    if (type === "tenant.purged") this.tenants.delete(next.id);
    else this.tenants.set(next.id, next);
    return this.emit(type, next.id, { case: "tenant", value: next });
  }

  emit(type: string, tenantId: string, resource: Event["resource"]): Event {
    const event = create(EventSchema, { sequence: ++this.sequence, id: uuid(), time: timestampNow(), type, tenantId, resource });
    this.log.push(event);
    for (const stream of this.streams) stream.push(create(WatchEventsResponseSchema, { kind: { case: "event", value: event } }));
    return event;
  }

  progress(): void {
    for (const stream of this.streams) stream.push(this.progressMessage());
  }

  /** Ends every open stream with this error. */
  drop(error: Error = new ConnectError("connection lost", Code.Unavailable)): void {
    for (const stream of this.streams) stream.push(error);
    this.streams.clear();
  }

  prune(below: bigint): void {
    this.oldest = below;
  }

  private progressMessage(): WatchEventsResponse {
    return create(WatchEventsResponseSchema, { kind: { case: "progress", value: { sequence: this.sequence, time: timestampNow() } } });
  }

  readonly source: TenantDirectorySource = {
    events: {
      listEvents: (async () => ({ latestSequence: this.sequence, events: [], nextPageToken: "" })) as never,
      watchEvents: ((request: { afterSequence: bigint }, options: { signal: AbortSignal }) => {
        const after = request.afterSequence;
        this.watchedAfter.push(after);
        const stream = new FakeStream();
        if (after + 1n < this.oldest) stream.push(expired());
        else {
          for (const event of this.log) {
            if (event.sequence > after) stream.push(create(WatchEventsResponseSchema, { kind: { case: "event", value: event } }));
          }
          if (this.progressAfterReplay) stream.push(this.progressMessage());
          this.streams.add(stream);
        }
        return stream.messages(options.signal);
      }) as never,
    },
    tenants: {
      listTenants: (async (request: { pageSize: number; pageToken: string; showDeleted: boolean }) => {
        expect(request.showDeleted).toBe(true);
        const page = Number(request.pageToken || "0");
        if (page === 0) this.listCalls++;
        this.beforePage?.(page);
        const all = [...this.tenants.values()];
        const tenants = all.slice(page * request.pageSize, (page + 1) * request.pageSize);
        return { tenants, nextPageToken: (page + 1) * request.pageSize < all.length ? String(page + 1) : "", totalSize: all.length };
      }) as never,
      getTenant: (async (request: { id: string }) => {
        this.rpcCalls.push(`get ${request.id}`);
        const tenant = this.tenants.get(request.id);
        if (!tenant) throw new ConnectError("not found", Code.NotFound);
        return tenant;
      }) as never,
      lookupTenant: (async (request: { key: { case: string; value: string } }) => {
        this.rpcCalls.push(`lookup ${request.key.case} ${request.key.value}`);
        const tenant = [...this.tenants.values()].find((t) => t.state !== State.DELETED && (request.key.case === "domain" ? t.domain === request.key.value : t.name.toLowerCase() === request.key.value.toLowerCase()));
        if (!tenant) throw new ConnectError("not found", Code.NotFound);
        return tenant;
      }) as never,
    },
  };
}

const directories: TenantDirectory[] = [];
afterEach(() => {
  for (const d of directories.splice(0)) d.close();
});

function open(feed: FakeFeed, options: TenantDirectoryOptions = {}): TenantDirectory {
  const directory = new TenantDirectory(feed.source, { initialBackoffMs: 1, maxBackoffMs: 5, ...options });
  directories.push(directory);
  return directory;
}

describe("TenantDirectory (fake feed)", () => {
  it("loads the list, catches up, and answers by id, domain (normalized as the service does) and name", async () => {
    const feed = new FakeFeed();
    const acme = feed.write("tenant.created", feed.tenant("Acme", "acme.example"));
    const books = feed.write("tenant.created", feed.tenant("Bücher", "xn--bcher-kva.example"));
    const directory = open(feed);
    expect(() => directory.byDomain("acme.example")).toThrow(TenantDirectoryNotReadyError);
    expect(directory.staleness).toBe(Infinity);
    await directory.ready();
    const acmeId = (acme.resource.value as Tenant).id;
    expect(directory.get(acmeId)?.name).toBe("Acme");
    expect(directory.byDomain("acme.example")?.id).toBe(acmeId);
    expect(directory.byDomain("  ACME.Example. ")?.id).toBe(acmeId);
    expect(directory.byDomain("Bücher.example")?.id).toBe((books.resource.value as Tenant).id);
    expect(directory.byDomain("BÜCHER.EXAMPLE.")?.id).toBe((books.resource.value as Tenant).id);
    expect(directory.byName(" acme ")?.id).toBe(acmeId);
    expect(directory.byName("BÜCHER")?.name).toBe("Bücher");
    expect(directory.byDomain("nobody.example")).toBeUndefined();
    expect(directory.byDomain("not a host!")).toBeUndefined();
    expect(directory.byDomain("")).toBeUndefined();
    expect(directory.sequence).toBe(2n);
    expect(directory.size).toBe(2);
    // It watched from the list's position.
    expect(feed.watchedAfter).toEqual([2n]);
  });

  it("never moves a tenant back when it replays events the list already reflects", async () => {
    const feed = new FakeFeed();
    const t = feed.tenant("Acme", "acme.example");
    feed.write("tenant.created", t);
    const listedAt = feed.sequence;
    // Writes between the list's position and the page that reads the tenant:
    // the list sees version 3, the stream then replays versions 2 and 3.
    feed.beforePage = (page) => {
      if (page === 0 && feed.listCalls === 1) {
        feed.write("tenant.updated", t, { name: "Acme 2" });
        feed.write("tenant.updated", t, { name: "Acme 3", domain: "acme3.example" });
      }
    };
    feed.source.events.listEvents = (async () => ({ latestSequence: listedAt, events: [], nextPageToken: "" })) as never;
    const directory = open(feed);
    const seen: string[] = [];
    directory.onChange((c) => c.kind === "event" && seen.push(c.tenant!.name));
    await directory.ready();
    expect(feed.watchedAfter).toEqual([listedAt]);
    expect(directory.get(t.id)?.name).toBe("Acme 3");
    expect(directory.get(t.id)?.etag).toBe('"3"');
    expect(directory.byDomain("acme3.example")?.id).toBe(t.id);
    expect(directory.byDomain("acme.example")).toBeUndefined();
    expect(directory.sequence).toBe(3n);
    // Nothing fires before the table is served.
    expect(seen).toEqual([]);
  });

  it("builds its indexes only once caught up: a domain that moved between two tenants during the list resolves to its holder", async () => {
    const feed = new FakeFeed();
    const early = feed.tenant("Early", "early.example");
    const late = feed.tenant("Late", "late.example");
    feed.write("tenant.created", early);
    feed.write("tenant.created", late);
    const position = feed.sequence;
    feed.source.events.listEvents = (async () => ({ latestSequence: position, events: [], nextPageToken: "" })) as never;
    // Page 0 reads `early`; then `early` takes a domain and gives it up,
    // and `late` takes it; page 1 reads `late` holding it. Replaying
    // `early`'s two events over the list would, with indexes kept during
    // the load, let `early` drop the entry that `late` holds.
    feed.beforePage = (page) => {
      if (page === 1) {
        feed.write("tenant.updated", early, { domain: "shared.example" });
        feed.write("tenant.updated", early, { domain: "early-2.example" });
        feed.write("tenant.updated", late, { domain: "shared.example" });
      }
    };
    const directory = open(feed, { pageSize: 1 });
    await directory.ready();
    expect(directory.byDomain("shared.example")?.id).toBe(late.id);
    expect(directory.byDomain("early-2.example")?.id).toBe(early.id);
    expect(directory.byDomain("early.example")).toBeUndefined();
    expect(directory.byDomain("late.example")).toBeUndefined();
  });

  it("applies every kind of change in order, and a deleted tenant leaves the domain and name lookups but not get()", async () => {
    const feed = new FakeFeed();
    const directory = open(feed);
    await directory.ready();
    const changes: TenantDirectoryChange[] = [];
    directory.onChange((c) => changes.push(c));
    const t = feed.tenant("Acme", "acme.example");
    const steps: Array<[string, Partial<Tenant>, (tenant: Tenant | undefined) => void]> = [
      ["tenant.created", {}, (x) => expect(x?.name).toBe("Acme")],
      ["tenant.updated", { name: "Acme Inc", domain: "acme.test" }, () => {
        expect(directory.byName("acme")).toBeUndefined();
        expect(directory.byName("ACME INC")?.id).toBe(t.id);
        expect(directory.byDomain("acme.example")).toBeUndefined();
        expect(directory.byDomain("acme.test")?.id).toBe(t.id);
      }],
      ["tenant.suspended", { state: State.SUSPENDED }, (x) => {
        expect(x?.state).toBe(State.SUSPENDED);
        expect(directory.byDomain("acme.test")?.state).toBe(State.SUSPENDED);
      }],
      ["tenant.activated", { state: State.ACTIVE }, () => expect(directory.byDomain("acme.test")?.state).toBe(State.ACTIVE)],
      ["tenant.deleted", { state: State.DELETED }, () => {
        expect(directory.byDomain("acme.test")).toBeUndefined();
        expect(directory.byName("Acme Inc")).toBeUndefined();
        expect(directory.get(t.id)?.state).toBe(State.DELETED);
      }],
      ["tenant.undeleted", { state: State.ACTIVE }, () => expect(directory.byDomain("acme.test")?.id).toBe(t.id)],
      ["tenant.deleted", { state: State.DELETED }, () => expect(directory.byDomain("acme.test")).toBeUndefined()],
      ["tenant.purged", {}, () => {
        expect(directory.get(t.id)).toBeUndefined();
        expect(directory.size).toBe(0);
      }],
    ];
    for (const [type, fields, check] of steps) {
      const event = feed.write(type, t, fields);
      await directory.waitFor(event.sequence);
      check(directory.get(t.id));
    }
    expect(changes.map((c) => (c.kind === "event" ? c.event.type : c.kind))).toEqual(steps.map(([type]) => type));
    const purge = changes.at(-1)!;
    expect(purge.kind === "event" && purge.tenant === undefined && purge.previous?.state === State.DELETED).toBe(true);
    // A membership event moves the position without touching the table.
    const membership = feed.emit("membership.created", t.id, { case: "membership", value: { id: uuid(), tenantId: t.id } as never });
    await directory.waitFor(membership.sequence);
    expect(changes).toHaveLength(steps.length);
    // An unknown type is skipped too (the contract: ignore what you do not know).
    const unknown = feed.emit("tenant.renamed-in-the-future", t.id, { case: "tenant", value: feed.tenant("Ghost", "ghost.example") });
    await directory.waitFor(unknown.sequence);
    expect(directory.byDomain("ghost.example")).toBeUndefined();
  });

  it("waitFor resolves at the event (or a progress message) that reaches the sequence, and can be cancelled", async () => {
    const feed = new FakeFeed();
    const directory = open(feed);
    await directory.ready();
    const t = feed.tenant("Acme", "acme.example");
    let reached = false;
    const waiting = directory.waitFor(feed.sequence + 2n).then(() => (reached = true));
    feed.write("tenant.created", t);
    await directory.waitFor(feed.sequence);
    expect(reached).toBe(false);
    feed.write("tenant.updated", t, { name: "Acme 2" });
    await waiting;
    expect(directory.byName("acme 2")?.id).toBe(t.id);
    // A sequence skipped by a rolled-back transaction is reached by progress.
    feed.sequence += 5n;
    const skipped = directory.waitFor(feed.sequence);
    feed.progress();
    await skipped;
    await expect(directory.waitFor(feed.sequence + 1n, { timeoutMs: 20 })).rejects.toThrow(/not reached within 20 ms/);
    const controller = new AbortController();
    const aborted = directory.waitFor(feed.sequence + 1n, { signal: controller.signal });
    controller.abort(new Error("caller gave up"));
    await expect(aborted).rejects.toThrow("caller gave up");
  });

  it("resumes after a dropped stream from the last sequence it applied, losing and repeating nothing", async () => {
    const feed = new FakeFeed();
    const errors: unknown[] = [];
    const directory = open(feed, { onError: (e) => errors.push(e) });
    await directory.ready();
    const a = feed.tenant("A", "a.example");
    feed.write("tenant.created", a);
    await directory.waitFor(feed.sequence);
    const before = feed.sequence;
    feed.drop();
    // Written while the directory is disconnected.
    const b = feed.tenant("B", "b.example");
    feed.write("tenant.created", b);
    feed.write("tenant.updated", a, { name: "A2" });
    const applied: bigint[] = [];
    directory.onChange((c) => c.kind === "event" && applied.push(c.event.sequence));
    await directory.waitFor(feed.sequence);
    expect(feed.watchedAfter.at(-1)).toBe(before);
    expect(applied).toEqual([before + 1n, before + 2n]);
    expect(directory.byDomain("b.example")?.id).toBe(b.id);
    expect(directory.byName("a2")?.id).toBe(a.id);
    expect(directory.stats.reconnects).toBeGreaterThanOrEqual(1);
    expect(directory.stats.loads).toBe(1);
    expect((errors[0] as ConnectError).code).toBe(Code.Unavailable);
  });

  it("on EVENTS_EXPIRED loads a new table while the old one keeps answering, then swaps them in one step", async () => {
    const feed = new FakeFeed();
    const stable = Array.from({ length: 50 }, (_, i) => feed.tenant(`Stable ${i}`, `stable-${i}.example`));
    for (const t of stable) feed.write("tenant.created", t);
    const leaving = feed.tenant("Leaving", "leaving.example");
    feed.write("tenant.created", leaving);
    const directory = open(feed, { pageSize: 10 });
    await directory.ready();
    const changes: TenantDirectoryChange[] = [];
    directory.onChange((c) => changes.push(c));
    feed.drop();
    // While it is away: a new tenant, a purge, and the events are pruned.
    const arriving = feed.tenant("Arriving", "arriving.example");
    feed.write("tenant.created", arriving);
    feed.write("tenant.deleted", leaving, { state: State.DELETED });
    feed.write("tenant.purged", leaving);
    feed.prune(feed.sequence);
    // Every page of the reload, the old table still answers.
    let pagesServedWithOldTable = 0;
    const problems: string[] = [];
    feed.beforePage = () => {
      for (const t of stable) if (directory.byDomain(t.domain)?.id !== t.id) problems.push(`${t.domain} missing`);
      if (directory.byDomain("leaving.example")?.id !== leaving.id) problems.push("the old table changed");
      if (directory.byDomain("arriving.example") !== undefined) problems.push("half-loaded table served");
      pagesServedWithOldTable++;
    };
    await vi.waitFor(() => expect(directory.stats.loads).toBe(2), { timeout: 5_000 });
    await directory.waitFor(feed.sequence);
    expect(problems).toEqual([]);
    expect(pagesServedWithOldTable).toBe(6);
    expect(directory.byDomain("arriving.example")?.id).toBe(arriving.id);
    expect(directory.byDomain("leaving.example")).toBeUndefined();
    expect(directory.get(leaving.id)).toBeUndefined();
    for (const t of stable) expect(directory.byDomain(t.domain)?.id).toBe(t.id);
    expect(changes).toEqual([{ kind: "reloaded", sequence: feed.sequence }]);
    expect((directory.lastError as ConnectError).message).toMatch(/pruned/);
  });

  it("refuses lookups once it has not heard from the service for maxStalenessMs; resolve() asks the service if told to", async () => {
    const feed = new FakeFeed();
    const t = feed.tenant("Acme", "acme.example");
    feed.write("tenant.created", t);
    const strict = open(feed, { maxStalenessMs: 300, idleTimeoutMs: 60_000 });
    const fallback = open(feed, { maxStalenessMs: 300, idleTimeoutMs: 60_000, whenStale: "rpc" });
    await strict.ready();
    await fallback.ready();
    expect(strict.byDomain("acme.example")?.id).toBe(t.id);
    expect(await fallback.resolve({ domain: "acme.example" })).toBe(fallback.byDomain("acme.example"));
    expect(feed.rpcCalls).toEqual([]);
    // The stream stays open but silent: no events, no progress.
    await vi.waitFor(() => expect(strict.isStale()).toBe(true), { timeout: 2_000, interval: 20 });
    expect(() => strict.byDomain("acme.example")).toThrow(TenantDirectoryStaleError);
    expect(() => strict.get(t.id)).toThrow(/has not heard from the service for \d+ ms \(maxStalenessMs 300\)/);
    await expect(strict.resolve({ domain: "acme.example" })).rejects.toThrow(TenantDirectoryStaleError);
    await vi.waitFor(() => expect(fallback.isStale()).toBe(true), { timeout: 2_000, interval: 20 });
    expect((await fallback.resolve({ domain: "acme.example" }))?.id).toBe(t.id);
    expect((await fallback.resolve({ id: t.id }))?.id).toBe(t.id);
    expect(await fallback.resolve({ name: "nobody" })).toBeUndefined();
    expect(feed.rpcCalls).toEqual([`lookup domain acme.example`, `get ${t.id}`, `lookup name nobody`]);
    // A progress message makes both current again.
    feed.progress();
    await vi.waitFor(() => expect(strict.isStale()).toBe(false));
    expect(strict.byDomain("acme.example")?.id).toBe(t.id);
  });

  it("replaces a stream that has gone silent for idleTimeoutMs", async () => {
    const feed = new FakeFeed();
    const directory = open(feed, { idleTimeoutMs: 50 });
    await directory.ready();
    await vi.waitFor(() => expect(feed.watchedAfter.length).toBeGreaterThanOrEqual(3), { timeout: 2_000 });
    expect(directory.stats.reconnects).toBeGreaterThanOrEqual(2);
    expect(directory.stats.loads).toBe(1);
  });

  it("keeps retrying a failing list, and close() ends everything", async () => {
    const feed = new FakeFeed();
    let failures = 3;
    const list = feed.source.tenants.listTenants;
    feed.source.tenants.listTenants = (async (...args: Parameters<typeof list>) => {
      if (failures-- > 0) throw new ConnectError("database down", Code.Unavailable);
      return list(...args);
    }) as never;
    const directory = open(feed);
    await directory.ready();
    expect(failures).toBe(-1);
    const waiting = directory.waitFor(feed.sequence + 10n);
    directory.close();
    await expect(waiting).rejects.toThrow(TenantDirectoryClosedError);
    expect(() => directory.get("x")).toThrow(TenantDirectoryClosedError);
    const never = open(new FakeFeed());
    const ready = never.ready();
    never.close();
    await expect(ready).rejects.toThrow(TenantDirectoryClosedError);
  });
});
