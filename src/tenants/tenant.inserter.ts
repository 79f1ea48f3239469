import type { EntityManager } from "@mikro-orm/postgresql";
import { remainingMs } from "../common/deadline.js";
import { batchInsert, type Inserted } from "../database/batch-insert.js";
import type { Batcher, BatcherOptions, Caller } from "../database/batcher.js";
import { boundedTransaction } from "../database/bounded.js";
import type { Tenant } from "./tenant.entity.js";
import { TenantRepository } from "./tenant.repository.js";
import { newTenant, type NewTenant } from "./tenant.service.js";
import { readEventSequence, WriteReceipt } from "../events/event-context.js";
import type { ParamsSchemaRegistry } from "../params-schemas/params-schema.registry.js";

/**
 * CreateTenant without a request_id, coalesced: the tenants created at about
 * the same time are inserted with one statement, committed together, instead
 * of one INSERT and one commit each (README, "Where the time goes"). The
 * statement is cancelled past the latest deadline of its callers; a caller
 * whose deadline passes first is answered DEADLINE_EXCEEDED (its tenant may
 * still be created, as with any RPC whose deadline passes while it runs).
 *
 * Each request still gets its own answer: a tenant that the statement
 * skipped because its name or domain is taken is inserted again alone, which
 * fails with the precise ALREADY_EXISTS (or succeeds, if the other tenant
 * was deleted in between); so does every tenant of a batch that PostgreSQL
 * refused for what one row holds. A lost connection fails the whole batch,
 * as it would have failed each request.
 */
export class TenantInserter {
  private readonly batcher: Batcher<Tenant, Inserted<Tenant>>;

  constructor(
    orm: EntityManager,
    private readonly schemas: ParamsSchemaRegistry,
    batching: Partial<BatcherOptions> = {},
  ) {
    const repository = new TenantRepository(orm.fork());
    this.batcher = batchInsert<Tenant>({
      insertMany: (tenants, deadline) => repository.insertMany(tenants, deadline === undefined ? undefined : remainingMs(deadline)),
      insertAlone: async (tenant, deadline) => {
        // A fork of its own: a failed insert must not leave anything behind for the others.
        const receipt = new WriteReceipt(tenant.createdBy ?? undefined);
        await boundedTransaction(orm.fork(), deadline, async (tx) => {
          await new TenantRepository(tx).insert(tenant);
          await readEventSequence(tx, receipt);
        });
        return { row: tenant, eventSequence: receipt.eventSequence };
      },
      batching,
    });
  }

  /**
   * Batches sent, tenants they carried, tenants dropped because their caller
   * had given up, and tenants waiting for a batch.
   */
  get stats() {
    return { ...this.batcher.stats, queued: this.batcher.queued };
  }

  /**
   * Validates (against its params schema too), inserts, and resolves with
   * the stored tenant and the sequence of its `tenant.created` event;
   * `actor` is its creator, `caller` who waits for it (see Batcher).
   */
  async create(input: NewTenant, actor?: string, caller?: Caller): Promise<{ tenant: Tenant; eventSequence: bigint | undefined }> {
    const { row, eventSequence } = await this.batcher.submit(await newTenant(input, this.schemas, { actor }), caller);
    return { tenant: row, eventSequence };
  }
}
