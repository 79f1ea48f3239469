import type { EntityManager } from "@mikro-orm/postgresql";
import { batchInsert } from "../database/batch-insert.js";
import type { Batcher, BatcherOptions } from "../database/batcher.js";
import type { Tenant } from "./tenant.entity.js";
import { TenantRepository } from "./tenant.repository.js";
import { newTenant, type NewTenant } from "./tenant.service.js";
import { EventRepository } from "../events/event.repository.js";

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
  private readonly batcher: Batcher<Tenant, Tenant>;
  /** The sequence of each inserted tenant's `tenant.created` event, read back after the commit. */
  private readonly sequences = new WeakMap<Tenant, bigint>();

  constructor(orm: EntityManager, batching: Partial<BatcherOptions> = {}) {
    const repository = new TenantRepository(orm.fork());
    const events = new EventRepository(orm.fork());
    const recordSequences = async (tenants: readonly Tenant[]) => {
      const sequences = await events.creationSequences("tenant.created", tenants.map((t) => t.id));
      for (const tenant of tenants) {
        const sequence = sequences.get(tenant.id);
        if (sequence !== undefined) this.sequences.set(tenant, sequence);
      }
    };
    this.batcher = batchInsert<Tenant>({
      insertMany: async (tenants) => {
        const inserted = await repository.insertMany(tenants);
        await recordSequences(tenants.filter((t) => inserted.has(t.id)));
        return inserted;
      },
      insertAlone: async (tenant) => {
        // A fork of its own: a failed insert must not leave anything behind for the others.
        await new TenantRepository(orm.fork()).insert(tenant);
        await recordSequences([tenant]);
        return tenant;
      },
      batching,
    });
  }

  /** Batches sent and tenants submitted. */
  get stats() {
    return { ...this.batcher.stats };
  }

  /**
   * Validates, inserts, and resolves with the stored tenant and the sequence
   * of its `tenant.created` event; `actor` is its creator.
   */
  async create(input: NewTenant, actor?: string): Promise<{ tenant: Tenant; eventSequence: bigint | undefined }> {
    const tenant = await this.batcher.submit(newTenant(input, actor));
    return { tenant, eventSequence: this.sequences.get(tenant) };
  }
}
