import type { EntityManager } from "@mikro-orm/postgresql";
import { Batcher, type BatcherOptions, type Settled } from "../database/batcher.js";
import { isRefusedStatement } from "../database/statement-error.js";
import type { Tenant } from "./tenant.entity.js";
import { TenantRepository } from "./tenant.repository.js";
import { newTenant, type NewTenant } from "./tenant.service.js";

/**
 * CreateTenant without a request_id and outside a transaction (no deadline),
 * coalesced: the tenants created at about the same time are inserted with
 * one statement, committed together, instead of one INSERT and one commit
 * each (README, "Where the time goes").
 *
 * Each request still gets its own answer: a tenant that the statement
 * skipped because its name or domain is taken is inserted again alone, which
 * fails with the precise ALREADY_EXISTS (or succeeds, if the other tenant
 * was deleted in between); so does every tenant of a batch that PostgreSQL
 * refused as a whole. A lost connection fails the whole batch, as it would
 * have failed each request.
 */
export class TenantInserter {
  private readonly batcher: Batcher<Tenant, void>;

  constructor(orm: EntityManager, options: Partial<BatcherOptions> = {}) {
    const repository = new TenantRepository(orm.fork());
    const alone = async (tenant: Tenant): Promise<Settled<void>> => {
      try {
        // A fork of its own: a failed insert must not leave anything behind for the others.
        await new TenantRepository(orm.fork()).insert(tenant);
        return { ok: true, value: undefined };
      } catch (error) {
        return { ok: false, error };
      }
    };
    this.batcher = new Batcher(
      async (tenants) => {
        let inserted: Set<string>;
        try {
          inserted = await repository.insertMany(tenants);
        } catch (error) {
          if (tenants.length === 1 || !isRefusedStatement(error)) throw error;
          inserted = new Set();
        }
        return Promise.all(tenants.map((t) => (inserted.has(t.id) ? { ok: true as const, value: undefined } : alone(t))));
      },
      { maxBatch: options.maxBatch ?? 128, maxInFlight: options.maxInFlight ?? 4 },
    );
  }

  /** Batches sent and tenants submitted. */
  get stats() {
    return { ...this.batcher.stats };
  }

  /** Validates, inserts, and resolves with the stored tenant. */
  async create(input: NewTenant): Promise<Tenant> {
    const tenant = newTenant(input);
    await this.batcher.submit(tenant);
    return tenant;
  }
}
