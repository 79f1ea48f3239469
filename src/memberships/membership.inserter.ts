import type { EntityManager } from "@mikro-orm/postgresql";
import { remainingMs } from "../common/deadline.js";
import { batchInsert, type Inserted } from "../database/batch-insert.js";
import type { Batcher, BatcherOptions, Caller } from "../database/batcher.js";
import type { Membership } from "./membership.entity.js";
import { MembershipRepository } from "./membership.repository.js";
import { MembershipService, newMembership, type NewMembership } from "./membership.service.js";
import { WriteReceipt } from "../events/event-context.js";

/**
 * CreateMembership without a request_id, coalesced: the memberships created
 * at about the same time are inserted with one statement that also checks,
 * under a share lock, that each tenant is ACTIVE (one round trip and one
 * commit for the batch, where each request alone takes BEGIN, SELECT ... FOR
 * SHARE, INSERT, COMMIT). Deadlines as in TenantInserter.
 *
 * A membership the statement skipped (tenant missing, suspended or deleted,
 * or the user already a member) is inserted again alone, with the same id,
 * through MembershipService.insert, which answers with the precise error (or
 * succeeds, if things changed in between); so is every membership of a batch
 * that PostgreSQL refused for what one row holds. A lost connection fails the whole
 * batch, as it would have failed each request.
 */
export class MembershipInserter {
  private readonly batcher: Batcher<Membership, Inserted<Membership>>;

  constructor(orm: EntityManager, batching: Partial<BatcherOptions> = {}) {
    const repository = new MembershipRepository(orm.fork());
    this.batcher = batchInsert<Membership>({
      insertMany: (memberships, deadline) => repository.insertMany(memberships, deadline === undefined ? undefined : remainingMs(deadline)),
      insertAlone: async (membership, deadline) => {
        const actor = membership.createdBy ?? undefined;
        const receipt = new WriteReceipt(actor);
        // A fork of its own: a failed insert must not leave anything behind for the others.
        const created = await new MembershipService(orm.fork(), actor, receipt, deadline).insert(membership);
        return { row: created, eventSequence: receipt.eventSequence };
      },
      batching,
    });
  }

  /** As TenantInserter's. */
  get stats() {
    return { ...this.batcher.stats, queued: this.batcher.queued };
  }

  /**
   * Validates, inserts, and resolves with the stored membership and the
   * sequence of its `membership.created` event; `actor` is its creator,
   * `caller` who waits for it (see Batcher).
   */
  async create(
    input: NewMembership,
    actor: string | undefined,
    caller?: Caller,
  ): Promise<{ membership: Membership; eventSequence: bigint | undefined }> {
    const { row, eventSequence } = await this.batcher.submit(newMembership(input, actor), caller);
    return { membership: row, eventSequence };
  }
}
