import type { DescMethod } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import { TenantService as TenantServiceDesc } from "../../gen/tenancy/v1/tenant_pb.js";
import { Batcher, type BatcherOptions, type Deadline } from "../database/batcher.js";
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
    this.ids = new Batcher((ids, timeoutMs) => answer(ids, (unique) => tenants.findManyById(unique, timeoutMs), (t) => t.id), batching);
    this.domains = new Batcher(
      (domains, timeoutMs) => answer(domains, (unique) => tenants.findManyByDomain(unique, timeoutMs), (t) => t.domain),
      batching,
    );
  }

  /** Queries sent and lookups answered, by id and by domain. */
  get stats() {
    return { byId: { ...this.ids.stats }, byDomain: { ...this.domains.stats } };
  }

  /** The tenant with this id (a valid UUID), deleted or not. */
  byId(id: string, deadline?: Deadline): Promise<Tenant | undefined> {
    return this.ids.submit(id.toLowerCase(), deadline);
  }

  /** The tenant that is not deleted with this normalized domain. */
  byDomain(domain: string, deadline?: Deadline): Promise<Tenant | undefined> {
    return this.domains.submit(domain, deadline);
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
