import type { DescMethod } from "@bufbuild/protobuf";
import type { EntityManager, Platform } from "@mikro-orm/postgresql";
import { TenantService as TenantServiceDesc } from "../../gen/tenancy/v1/tenant_pb.js";
import { sqlQuery } from "../database/sql.js";
import type { Tenant } from "./tenant.entity.js";

/** The caller's deadline: it stops waiting when `signal` aborts, `timeoutMs` from now. */
export interface LoadDeadline {
  signal: AbortSignal;
  timeoutMs: number;
}

export interface BatcherOptions {
  /** Most keys in one query. */
  maxBatch: number;
  /**
   * Most queries running at once. While they all run, new keys wait and go
   * out together in the next query: under load the batches grow, instead of
   * a queue of single-row queries forming in front of the pool.
   */
  maxInFlight: number;
}

interface Waiter<V> {
  resolve(value: V | undefined): void;
  reject(error: unknown): void;
  /** Epoch ms when this caller stops waiting; undefined: never. */
  until: number | undefined;
}

/**
 * Coalesces lookups by key: the keys asked for while earlier queries run go
 * out together in one query, and each caller gets the value of its own key.
 * A query's timeout is the latest deadline of its callers (none if one of
 * them has none), so it never outlives all of them.
 */
export class KeyBatcher<V> {
  private pending = new Map<string, Waiter<V>[]>();
  private inFlight = 0;
  private scheduled = false;
  readonly stats = { queries: 0, keys: 0 };

  constructor(
    private readonly query: (keys: string[], timeoutMs: number | undefined) => Promise<Map<string, V>>,
    private readonly options: BatcherOptions,
  ) {}

  load(key: string, deadline?: LoadDeadline): Promise<V | undefined> {
    if (deadline?.signal.aborted) return Promise.reject(deadline.signal.reason);
    return new Promise((resolve, reject) => {
      let waiter: Waiter<V> = { resolve, reject, until: undefined };
      if (deadline) {
        // The caller stops waiting at its deadline; the shared query goes on for the others.
        const { signal } = deadline;
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        waiter = {
          resolve: (value) => {
            signal.removeEventListener("abort", onAbort);
            resolve(value);
          },
          reject: (error) => {
            signal.removeEventListener("abort", onAbort);
            reject(error);
          },
          until: Date.now() + deadline.timeoutMs,
        };
      }
      const waiters = this.pending.get(key);
      if (waiters) waiters.push(waiter);
      else this.pending.set(key, [waiter]);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.pending.size === 0) return;
    this.scheduled = true;
    // After the current I/O callbacks, so that the requests that arrived in
    // the same read of a socket join this query.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.inFlight < this.options.maxInFlight && this.pending.size > 0) {
      let batch: Map<string, Waiter<V>[]>;
      if (this.pending.size <= this.options.maxBatch) {
        batch = this.pending;
        this.pending = new Map();
      } else {
        batch = new Map();
        for (const [key, waiters] of this.pending) {
          batch.set(key, waiters);
          this.pending.delete(key);
          if (batch.size === this.options.maxBatch) break;
        }
      }
      this.run(batch);
    }
  }

  private run(batch: Map<string, Waiter<V>[]>): void {
    let until: number | undefined = 0;
    for (const waiters of batch.values()) {
      for (const w of waiters) until = w.until === undefined || until === undefined ? undefined : Math.max(until, w.until);
    }
    this.inFlight++;
    this.stats.queries++;
    this.stats.keys += batch.size;
    const timeoutMs = until === undefined ? undefined : Math.max(1, until - Date.now());
    this.query([...batch.keys()], timeoutMs)
      .then(
        (found) => {
          for (const [key, waiters] of batch) for (const w of waiters) w.resolve(found.get(key));
        },
        (error: unknown) => {
          for (const waiters of batch.values()) for (const w of waiters) w.reject(error);
        },
      )
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
  }
}

/**
 * A `"Tenants"` row as `pg` returns it, mapped without the ORM: these reads
 * change nothing and need no identity map. Timestamps arrive as text
 * (MikroORM turns off `pg`'s parser) and are read with the platform's.
 */
export function tenantFromRow(row: Record<string, unknown>, platform: Platform): Tenant {
  const date = (value: unknown) => (value instanceof Date ? value : (platform.parseDate(value as string) as Date));
  return {
    id: row.tenant_id as string,
    name: row.name as string,
    domain: row.domain as string,
    params: (row.params as Record<string, unknown> | null) ?? null,
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
    version: row.version as number,
    state: row.state as Tenant["state"],
    deletedAt: row.deleted_at == null ? null : date(row.deleted_at),
    purgeAt: row.purge_at == null ? null : date(row.purge_at),
  };
}

/**
 * The plain reads of the resolve path (GetTenant by id, LookupTenant by
 * domain), coalesced: the keys asked for at about the same time are read
 * with one indexed query (`= ANY($1)`), and each caller gets its own row.
 * Under load this costs PostgreSQL and the `pg` driver one query per batch
 * instead of one per request (README, "Where the time goes"); alone, a
 * request waits for nothing but its own query.
 *
 * Rows are read on the ORM's connection pool but are not managed by any
 * entity manager: nothing here is ever changed or flushed.
 */
export class TenantLoader {
  private readonly ids: KeyBatcher<Tenant>;
  private readonly domains: KeyBatcher<Tenant>;

  constructor(orm: EntityManager, options: Partial<BatcherOptions> = {}) {
    // A fork of its own, never in a transaction, holding no entities.
    const em = orm.fork();
    const platform = em.getPlatform();
    const batching: BatcherOptions = { maxBatch: options.maxBatch ?? 256, maxInFlight: options.maxInFlight ?? 4 };
    const read = async (sql: string, keys: string[], timeoutMs: number | undefined, keyOf: (t: Tenant) => string) => {
      const rows = await sqlQuery<Record<string, unknown>>(em, sql, [keys], { timeoutMs });
      const found = new Map<string, Tenant>();
      for (const row of rows) {
        const tenant = tenantFromRow(row, platform);
        found.set(keyOf(tenant), tenant);
      }
      return found;
    };
    this.ids = new KeyBatcher(
      (ids, timeoutMs) => read(`SELECT * FROM "Tenants" WHERE tenant_id = ANY(?::uuid[])`, ids, timeoutMs, (t) => t.id),
      batching,
    );
    this.domains = new KeyBatcher(
      (domains, timeoutMs) =>
        read(`SELECT * FROM "Tenants" WHERE domain = ANY(?::text[]) AND state <> 'DELETED'`, domains, timeoutMs, (t) => t.domain),
      batching,
    );
  }

  /** Queries sent and keys read, by id and by domain. */
  get stats() {
    return { byId: { ...this.ids.stats }, byDomain: { ...this.domains.stats } };
  }

  /** The tenant with this id (a valid UUID), deleted or not. */
  byId(id: string, deadline?: LoadDeadline): Promise<Tenant | undefined> {
    return this.ids.load(id.toLowerCase(), deadline);
  }

  /** The tenant that is not deleted with this normalized domain. */
  byDomain(domain: string, deadline?: LoadDeadline): Promise<Tenant | undefined> {
    return this.domains.load(domain, deadline);
  }
}

/**
 * Whether a request is one of the reads TenantLoader serves (GetTenant, and
 * LookupTenant by domain): they need no transaction of their own.
 */
export function isCoalescedTenantRead(method: DescMethod, message: unknown): boolean {
  if (method === TenantServiceDesc.method.getTenant) return true;
  return method === TenantServiceDesc.method.lookupTenant && (message as { key: { case?: string } }).key.case === "domain";
}
