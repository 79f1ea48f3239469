/**
 * An in-process cache of resolved tenants, keyed by what a request asks for
 * (`i:<id>` for GetTenant, `d:<normalized domain>` for LookupTenant), each
 * entry remembering the tenant id it holds so that one invalidation by id
 * removes every key that leads to that tenant: after a change of domain the
 * old domain no longer resolves from the cache either.
 *
 * Bounded: at most `capacity` keys, least recently used evicted first (a Map
 * keeps insertion order; a hit moves its key to the end).
 *
 * Correctness against concurrent fills: a read that missed takes a `token`
 * before it asks the database and hands it back with the value it got. If
 * the tenant was invalidated (or the whole cache cleared) after the token
 * was taken, the value may predate the change and is not stored. The cache
 * only serves while `live` is set, i.e. while the invalidation listener is
 * connected and LISTENing (see tenant-invalidation.ts); otherwise every read
 * goes to the database.
 */
export interface TenantCacheStats {
  hits: number;
  misses: number;
  /** Reads that skipped the cache because invalidations were not being received. */
  bypassed: number;
  /** Fills refused because the tenant changed while it was being read. */
  refusedFills: number;
  evictions: number;
  invalidations: number;
  clears: number;
}

interface Entry<V> {
  id: string;
  value: V;
}

/** How many recent invalidations are remembered to refuse late fills. */
const RECENT_LIMIT = 4096;

export class TenantCache<V = unknown> {
  private readonly entries = new Map<string, Entry<V>>();
  /** tenant id -> keys whose entry holds that tenant. */
  private readonly keysById = new Map<string, string[]>();
  /** tenant id -> sequence number of its last invalidation (bounded). */
  private readonly recent = new Map<string, number>();
  private seq = 0;
  /** Fills with a token below this are refused (a clear, or forgotten invalidations). */
  private floor = 0;
  /** Set by the invalidation listener: invalidations are being received. */
  private live = false;
  /** The listener's last proof of life must be newer than this to serve (ms since epoch). */
  private liveUntil = 0;
  readonly stats: TenantCacheStats = { hits: 0, misses: 0, bypassed: 0, refusedFills: 0, evictions: 0, invalidations: 0, clears: 0 };

  constructor(readonly capacity: number) {}

  get enabled(): boolean {
    return this.capacity > 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Whether reads may be answered from the cache right now. */
  get usable(): boolean {
    return this.live && Date.now() < this.liveUntil;
  }

  /**
   * Called by the listener: `live` once LISTEN is in place (the cache is
   * cleared then, since changes made while nobody listened were missed),
   * not live as soon as the connection is in doubt (cleared too).
   * `until` bounds how long the current proof of life counts.
   */
  setLive(live: boolean, until = Infinity): void {
    if (live !== this.live) this.clear();
    this.live = live;
    this.liveUntil = live ? until : 0;
  }

  /** Extends the listener's proof of life (after a successful heartbeat). */
  extendLive(until: number): void {
    if (this.live) this.liveUntil = until;
  }

  get(key: string): V | undefined {
    if (!this.enabled) return undefined;
    if (!this.usable) {
      this.stats.bypassed += 1;
      return undefined;
    }
    const entry = this.entries.get(key);
    if (!entry) {
      this.stats.misses += 1;
      return undefined;
    }
    this.stats.hits += 1;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Take before reading the database; pass to `set` with what was read. */
  token(): number {
    return this.seq;
  }

  /** Stores a value read with `token`, unless the tenant changed since. Returns whether it was stored. */
  set(key: string, id: string, value: V, token: number): boolean {
    if (!this.enabled || !this.usable) return false;
    if (token < this.floor || (this.recent.get(id) ?? -1) > token) {
      this.stats.refusedFills += 1;
      return false;
    }
    if (this.entries.has(key)) this.remove(key);
    this.entries.set(key, { id, value });
    const keys = this.keysById.get(id);
    if (keys) keys.push(key);
    else this.keysById.set(id, [key]);
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.remove(oldest);
      this.stats.evictions += 1;
    }
    return true;
  }

  /** Forgets a tenant under every key, and refuses fills that started before now. */
  invalidate(id: string): void {
    this.seq += 1;
    this.stats.invalidations += 1;
    this.recent.delete(id);
    this.recent.set(id, this.seq);
    if (this.recent.size > RECENT_LIMIT) {
      const [oldestId, oldestSeq] = this.recent.entries().next().value as [string, number];
      this.recent.delete(oldestId);
      // Fills older than a forgotten invalidation can no longer be checked.
      this.floor = Math.max(this.floor, oldestSeq);
    }
    const keys = this.keysById.get(id);
    if (!keys) return;
    this.keysById.delete(id);
    for (const key of keys) this.entries.delete(key);
  }

  /** Forgets everything, and refuses fills that started before now. */
  clear(): void {
    this.seq += 1;
    this.floor = this.seq;
    this.stats.clears += 1;
    this.entries.clear();
    this.keysById.clear();
    this.recent.clear();
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    const keys = this.keysById.get(entry.id);
    if (!keys) return;
    const i = keys.indexOf(key);
    if (i >= 0) keys.splice(i, 1);
    if (keys.length === 0) this.keysById.delete(entry.id);
  }
}
