import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { Event, EventService } from "../../../gen/tenancy/v1/event_pb.js";
import type { Tenant, TenantService } from "../../../gen/tenancy/v1/tenant_pb.js";
// The service's own list, compiled into the package (see tsconfig.json).
import { EVENT_TYPES } from "../../../src/events/event.types.js";
import { reasonOf } from "./errors.js";
import { backoffMs } from "./interceptors.js";
import { TenantTable } from "./tenant-table.js";

/** What the directory calls: the typed clients of a TenancyClient (or anything shaped like them). */
export interface TenantDirectorySource {
  tenants: Pick<Client<typeof TenantService>, "listTenants" | "getTenant" | "lookupTenant">;
  events: Pick<Client<typeof EventService>, "listEvents" | "watchEvents">;
}

export interface TenantDirectoryOptions {
  /**
   * How long the directory may go without hearing from the service (an
   * event or a progress message, which the service sends every few seconds
   * on a quiet stream) before its lookups refuse to answer from memory.
   * Default 30,000 ms; Infinity for never. Checked by a timer: a lookup made
   * by code that has kept the event loop busy past the limit still answers.
   */
  maxStalenessMs?: number;
  /**
   * What `resolve()` does when the directory is stale or not loaded yet:
   * `throw` (the default) a TenantDirectoryStaleError /
   * TenantDirectoryNotReadyError, or `rpc`: ask the service (GetTenant,
   * LookupTenant). The synchronous lookups always throw.
   */
  whenStale?: "throw" | "rpc";
  /** Tenants per ListTenants page when (re)loading. Default 1000 (the service's maximum). */
  pageSize?: number;
  /**
   * A stream that says nothing (no event, no progress) for this long is
   * taken for dead (a half-open connection) and replaced. Default 20,000 ms:
   * keep it above the service's progress interval.
   */
  idleTimeoutMs?: number;
  /** Backoff between attempts to list or to watch again (full jitter). Default 100 ms doubling up to 5,000 ms. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Told about every failed list and every stream that ended; the directory retries by itself. */
  onError?: (error: unknown) => void;
}

/** What `onChange` listeners receive. */
export type TenantDirectoryChange =
  | {
      kind: "event";
      /** The event that was applied. */
      event: Event;
      /** The tenant after the change; undefined when it was purged. */
      tenant: Tenant | undefined;
      /** The tenant before the change; undefined when it is new to the directory. */
      previous: Tenant | undefined;
    }
  | {
      /** The table was replaced by a fresh list (after EVENTS_EXPIRED): compare what you keep from it. */
      kind: "reloaded";
      sequence: bigint;
    };

export type ResolveKey = { id: string } | { domain: string } | { name: string };

export class TenantDirectoryNotReadyError extends Error {
  override readonly name = "TenantDirectoryNotReadyError";
  constructor() {
    super("the tenant directory has not finished loading: await directory.ready() first");
  }
}

export class TenantDirectoryStaleError extends Error {
  override readonly name = "TenantDirectoryStaleError";
  constructor(
    readonly stalenessMs: number,
    readonly maxStalenessMs: number,
    readonly lastError: unknown,
  ) {
    super(
      `the tenant directory has not heard from the service for ${Math.round(stalenessMs)} ms (maxStalenessMs ${maxStalenessMs})` +
        (lastError instanceof Error ? `; last error: ${lastError.message}` : ""),
    );
  }
}

export class TenantDirectoryClosedError extends Error {
  override readonly name = "TenantDirectoryClosedError";
  constructor() {
    super("the tenant directory was closed");
  }
}

interface TableState {
  table: TenantTable;
  /** Every event up to here is reflected in the table. */
  sequence: bigint;
}

interface Waiter {
  sequence: bigint;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface WaitOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** The events that carry a tenant's new state (a purge carries its last one, and removes it). */
const tenantStateTypes = new Set<string>(EVENT_TYPES.filter((type) => type.startsWith("tenant.") && type !== "tenant.purged"));

/**
 * Every tenant the caller may read, in memory, kept current by the change
 * feed the way a Kubernetes informer keeps its cache: list once, then apply
 * the events after the list's position.
 *
 * Loading: the feed's latest sequence S (ListEvents), then every tenant
 * (ListTenants with show_deleted, all pages), then WatchEvents after S. The
 * pages are read after S, so replaying the events after S brings every
 * tenant to its current state; an event never moves a tenant back (a state
 * whose etag is not newer than the one held is ignored). The table is
 * served once the stream's first progress message says it has caught up.
 *
 * After a dropped stream it watches again after the last sequence it
 * applied, with backoff. When those events were pruned (EVENTS_EXPIRED) it
 * loads a new table the same way while the old one keeps answering, and
 * swaps the two in one step once the new one has caught up.
 */
export class TenantDirectory {
  private readonly maxStalenessMs: number;
  private readonly whenStale: "throw" | "rpc";
  private readonly pageSize: number;
  private readonly idleTimeoutMs: number;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly onError: ((error: unknown) => void) | undefined;

  /** The table lookups are served from; undefined until the first load has caught up. */
  private live: TableState | undefined;
  /** When the live table was last confirmed current (an event or a progress message), on the monotonic clock. */
  private heardAt = 0;
  /**
   * Whether lookups may answer from the live table: loaded, not closed, and
   * confirmed within maxStalenessMs. A timer clears it when that time has
   * passed without a confirmation, so that a lookup reads one field instead
   * of the clock (which would cost a third of a lookup).
   */
  private servable = false;
  private staleTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private readonly stop = new AbortController();
  private readonly listeners = new Set<(change: TenantDirectoryChange) => void>();
  private waiters: Waiter[] = [];
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: unknown) => void;
  private counters = { loads: 0, reconnects: 0, eventsApplied: 0 };

  /** The last error the directory met while listing or watching (it retries by itself). */
  lastError: unknown = undefined;

  constructor(
    private readonly source: TenantDirectorySource,
    options: TenantDirectoryOptions = {},
  ) {
    this.maxStalenessMs = options.maxStalenessMs ?? 30_000;
    if (!(this.maxStalenessMs > 0)) throw new RangeError("maxStalenessMs must be a positive number of milliseconds (Infinity for never)");
    this.whenStale = options.whenStale ?? "throw";
    this.pageSize = options.pageSize ?? 1000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 20_000;
    this.initialBackoffMs = options.initialBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.onError = options.onError;
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // ready() may never be called; its rejection on close must not be reported as unhandled.
    this.readyPromise.catch(() => {});
    void this.run();
  }

  // ------------------------------------------------------------ lookups

  /** The tenant with this id, deleted ones included (as GetTenant); undefined if none. */
  get(id: string): Tenant | undefined {
    return this.current().byId.get(id);
  }

  /**
   * The tenant a request for this host name belongs to (as LookupTenant by
   * domain): normalized by the service's own code (trimmed, lower-cased, one
   * trailing dot removed, IDN to punycode); deleted tenants are not found.
   * Undefined if none, or if the name is not a valid host name. Strip the
   * port of a Host header first.
   */
  byDomain(domain: string): Tenant | undefined {
    return this.current().byDomain(domain);
  }

  /** The tenant with this name, trimmed and compared case-insensitively (as LookupTenant by name); deleted tenants are not found. */
  byName(name: string): Tenant | undefined {
    return this.current().byName(name);
  }

  /**
   * The same lookups, asynchronously: from memory when the directory is
   * current; when it is stale or still loading, with `whenStale: "rpc"`,
   * from the service (GetTenant, LookupTenant), else the error the
   * synchronous lookups throw (after waiting for the first load).
   */
  async resolve(key: ResolveKey, options: WaitOptions = {}): Promise<Tenant | undefined> {
    if (this.live === undefined || this.isStale()) {
      if (this.whenStale === "rpc" && !this.closed) return this.resolveRemotely(key, options);
      if (this.live === undefined) await this.ready(options);
    }
    return "id" in key ? this.get(key.id) : "domain" in key ? this.byDomain(key.domain) : this.byName(key.name);
  }

  /** Every tenant held (deleted ones included), as of `sequence`. */
  tenants(): IterableIterator<Tenant> {
    return this.current().byId.values();
  }

  get size(): number {
    return this.live?.table.size ?? 0;
  }

  // ------------------------------------------------------------ state

  /** Resolves once the first full list is loaded and has caught up with the feed. */
  ready(options: WaitOptions = {}): Promise<void> {
    return this.live !== undefined ? Promise.resolve() : withCancel(this.readyPromise, options);
  }

  /**
   * Resolves once the directory reflects every event up to `sequence`: pass
   * the `tenancy-event-sequence` header of a write's response (or
   * `client.lastEventSequence`) to read your own writes.
   */
  waitFor(sequence: bigint | number | string, options: WaitOptions = {}): Promise<void> {
    const target = BigInt(sequence);
    if (this.closed) return Promise.reject(new TenantDirectoryClosedError());
    if (this.live !== undefined && this.live.sequence >= target) return Promise.resolve();
    let waiter: Waiter | undefined;
    const reached = new Promise<void>((resolve, reject) => {
      waiter = { sequence: target, resolve, reject };
      this.waiters.push(waiter);
    });
    // A caller that gives up leaves no waiter behind.
    return withCancel(reached, options).catch((error: unknown) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw error;
    });
  }

  /** The sequence of the last event (or progress) the served table reflects; 0n before it is loaded. */
  get sequence(): bigint {
    return this.live?.sequence ?? 0n;
  }

  /** Milliseconds since the served table was last confirmed current by the service; Infinity before it is loaded. */
  get staleness(): number {
    return this.live === undefined ? Infinity : performance.now() - this.heardAt;
  }

  get isReady(): boolean {
    return this.live !== undefined;
  }

  /** Whether lookups currently refuse to answer because the table is stale beyond maxStalenessMs. */
  isStale(): boolean {
    return this.live !== undefined && !this.closed && !this.servable;
  }

  /** How many full loads (1, plus one per EVENTS_EXPIRED), stream reconnects and applied tenant events so far. */
  get stats(): { loads: number; reconnects: number; eventsApplied: number } {
    return { ...this.counters };
  }

  /**
   * Calls the listener for every tenant event applied to the served table
   * (after the table has changed) and once per reload. Returns the
   * unsubscribe function.
   */
  onChange(listener: (change: TenantDirectoryChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops watching; lookups throw TenantDirectoryClosedError from then on. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.servable = false;
    clearTimeout(this.staleTimer);
    this.stop.abort(new TenantDirectoryClosedError());
    this.rejectReady(new TenantDirectoryClosedError());
    for (const waiter of this.waiters) waiter.reject(new TenantDirectoryClosedError());
    this.waiters = [];
  }

  private current(): TenantTable {
    if (this.servable) return this.live!.table;
    if (this.closed) throw new TenantDirectoryClosedError();
    if (this.live === undefined) throw new TenantDirectoryNotReadyError();
    throw new TenantDirectoryStaleError(this.staleness, this.maxStalenessMs, this.lastError);
  }

  private async resolveRemotely(key: ResolveKey, options: WaitOptions): Promise<Tenant | undefined> {
    const call = { ...(options.signal ? { signal: options.signal } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) };
    try {
      if ("id" in key) return await this.source.tenants.getTenant({ id: key.id }, call);
      return await this.source.tenants.lookupTenant(
        { key: "domain" in key ? { case: "domain", value: key.domain } : { case: "name", value: key.name } },
        call,
      );
    } catch (error) {
      // What the memory lookups answer with undefined: no such tenant, or a
      // key that cannot name one.
      if (error instanceof ConnectError && (error.code === Code.NotFound || error.code === Code.InvalidArgument)) return undefined;
      throw error;
    }
  }

  // ------------------------------------------------------------ loading and following

  private async run(): Promise<void> {
    /** The table the stream feeds: the live one, or a new one until it has caught up. */
    let working: TableState | undefined;
    let failures = 0;
    while (!this.closed) {
      try {
        if (working === undefined) working = await this.load();
        const expired = await this.follow(working, () => (failures = 0));
        if (expired) working = undefined;
      } catch (error) {
        if (this.closed) break;
        this.report(error);
        if (reasonOf(error) === "EVENTS_EXPIRED") working = undefined;
      }
      if (this.closed) break;
      this.counters.reconnects++;
      await delay(backoffMs(failures++, this.initialBackoffMs, this.maxBackoffMs), this.stop.signal).catch(() => {});
    }
  }

  /** A new table: every tenant, at least as recent as the feed's position S that it returns with. */
  private async load(): Promise<TableState> {
    const signal = this.stop.signal;
    const head = await this.source.events.listEvents({ orderBy: "sequence desc", pageSize: 1 }, { signal });
    const table = new TenantTable();
    let pageToken = "";
    do {
      const page = await this.source.tenants.listTenants({ pageSize: this.pageSize, pageToken, showDeleted: true }, { signal });
      for (const tenant of page.tenants) table.upsert(tenant);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    this.counters.loads++;
    return { table, sequence: head.latestSequence };
  }

  /**
   * Applies the stream to `working` until it ends. A table that is not the
   * live one becomes it at the stream's first progress message, which the
   * service sends once it has replayed everything up to the present.
   * Returns true when the stream ended because the position expired.
   */
  private async follow(working: TableState, onMessage: () => void): Promise<boolean> {
    const stream = new AbortController();
    const stopStream = () => stream.abort(this.stop.signal.reason);
    this.stop.signal.addEventListener("abort", stopStream, { once: true });
    const idle = setTimeout(() => stream.abort(new ConnectError(`no message for ${this.idleTimeoutMs} ms`, Code.DeadlineExceeded)), this.idleTimeoutMs);
    try {
      const responses = this.source.events.watchEvents({ afterSequence: working.sequence }, { signal: stream.signal, timeoutMs: 0 });
      for await (const response of responses) {
        idle.refresh();
        onMessage();
        const kind = response.kind;
        if (kind.case === "event") {
          this.apply(working, kind.value);
        } else if (kind.case === "progress") {
          if (kind.value.sequence > working.sequence) working.sequence = kind.value.sequence;
          if (working !== this.live) this.promote(working);
          else this.confirm();
        }
      }
      // The service ended the stream without an error: watch again.
      return false;
    } catch (error) {
      if (reasonOf(error) === "EVENTS_EXPIRED") {
        if (!this.closed) this.report(error);
        return true;
      }
      throw error;
    } finally {
      clearTimeout(idle);
      this.stop.signal.removeEventListener("abort", stopStream);
    }
  }

  private apply(working: TableState, event: Event): void {
    if (event.sequence <= working.sequence) return;
    working.sequence = event.sequence;
    const isLive = working === this.live;
    let tenant: Tenant | undefined;
    let previous: Tenant | undefined | null = null;
    if (event.type === "tenant.purged") {
      previous = working.table.remove(event.tenantId) ?? null;
    } else if (tenantStateTypes.has(event.type) && event.resource.case === "tenant") {
      tenant = event.resource.value;
      previous = working.table.upsert(tenant);
    }
    if (!isLive) return;
    this.confirm();
    if (previous === null) return;
    this.counters.eventsApplied++;
    this.emit({ kind: "event", event, tenant, previous });
  }

  /** The live table has heard from the service: fresh, and possibly further along. */
  private confirm(): void {
    this.heardAt = performance.now();
    this.servable = true;
    this.staleTimer?.refresh();
    this.settleWaiters();
  }

  /** A loaded table has caught up: it replaces the live one in one step. */
  private promote(working: TableState): void {
    working.table.index();
    const reload = this.live !== undefined;
    this.live = working;
    this.heardAt = performance.now();
    this.servable = true;
    if (this.staleTimer === undefined && this.maxStalenessMs < 2 ** 31 - 1) {
      this.staleTimer = setTimeout(() => (this.servable = false), this.maxStalenessMs);
      // The directory must not keep a process alive that has nothing else to do.
      this.staleTimer.unref();
    } else {
      this.staleTimer?.refresh();
    }
    this.resolveReady();
    this.settleWaiters();
    if (reload) this.emit({ kind: "reloaded", sequence: working.sequence });
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    const sequence = this.live!.sequence;
    const pending: Waiter[] = [];
    for (const waiter of this.waiters) {
      if (waiter.sequence <= sequence) waiter.resolve();
      else pending.push(waiter);
    }
    this.waiters = pending;
  }

  private emit(change: TenantDirectoryChange): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        // A listener's bug must not stop the directory.
        this.report(error);
      }
    }
  }

  private report(error: unknown): void {
    this.lastError = error;
    this.onError?.(error);
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The promise, or a rejection when the signal aborts or the timeout passes first. */
function withCancel<T>(promise: Promise<T>, { signal, timeoutMs }: WaitOptions): Promise<T> {
  if (!signal && timeoutMs === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const timer =
      timeoutMs === undefined ? undefined : setTimeout(() => finish(() => reject(new Error(`not reached within ${timeoutMs} ms`))), timeoutMs);
    const onAbort = () => finish(() => reject(signal!.reason));
    function finish(settle: () => void) {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle();
    }
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}
