import type { EntityManager } from "@mikro-orm/postgresql";
import { remainingMs, type Deadline } from "../common/deadline.js";
import { Batcher, type BatcherOptions, type Caller } from "../database/batcher.js";
import type { Tenant } from "./tenant.entity.js";
import { TenantRepository } from "./tenant.repository.js";

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
  private readonly ids: Batcher<string, Tenant | undefined>;
  private readonly domains: Batcher<string, Tenant | undefined>;

  constructor(orm: EntityManager, options: Partial<BatcherOptions> = {}) {
    // A fork of its own, never in a transaction, holding no entities.
    const tenants = new TenantRepository(orm.fork());
    const batching: BatcherOptions = { maxBatch: options.maxBatch ?? 256, maxInFlight: options.maxInFlight ?? 4 };
    // Each key once in the query, however many callers asked for it.
    const answer = async (keys: string[], read: (unique: string[]) => Promise<Tenant[]>, keyOf: (t: Tenant) => string) => {
      const found = new Map<string, Tenant>();
      for (const tenant of await read([...new Set(keys)])) found.set(keyOf(tenant), tenant);
      return keys.map((key) => ({ ok: true as const, value: found.get(key) }));
    };
    // Past the batch's deadline nobody waits for the query: PostgreSQL is asked to cancel it.
    const timeout = (deadline: Deadline | undefined) => (deadline === undefined ? undefined : remainingMs(deadline));
    this.ids = new Batcher(
      (ids, deadline) => answer(ids, (unique) => tenants.findManyById(unique, timeout(deadline)), (t) => t.id),
      batching,
    );
    this.domains = new Batcher(
      (domains, deadline) => answer(domains, (unique) => tenants.findManyByDomain(unique, timeout(deadline)), (t) => t.domain),
      batching,
    );
  }

  /** Queries sent, lookups they answered, lookups dropped and lookups waiting, by id and by domain. */
  get stats() {
    return {
      byId: { ...this.ids.stats, queued: this.ids.queued },
      byDomain: { ...this.domains.stats, queued: this.domains.queued },
    };
  }

  /** The tenant with this id (a valid UUID), deleted or not. */
  byId(id: string, caller?: Caller): Promise<Tenant | undefined> {
    return this.ids.submit(id.toLowerCase(), caller);
  }

  /** The tenant that is not deleted with this normalized domain. */
  byDomain(domain: string, caller?: Caller): Promise<Tenant | undefined> {
    return this.domains.submit(domain, caller);
  }
}
