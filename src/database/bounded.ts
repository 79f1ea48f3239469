import type { EntityManager } from "@mikro-orm/postgresql";
import { hasPassed, remainingMs, type Deadline } from "../common/deadline.js";
import { DeadlineExceededError } from "../common/errors.js";
import { sqlQuery } from "./sql.js";

/**
 * Runs `work` in a transaction; with a deadline, its statement and lock
 * timeouts end at the deadline, so a slow query or a wait for a lock is
 * cancelled by PostgreSQL (answered DEADLINE_EXCEEDED) instead of outliving
 * its caller. The budget is what is left of the deadline when the
 * transaction starts, not the client's original timeout.
 */
export async function boundedTransaction<T>(em: EntityManager, deadline: Deadline | undefined, work: (tx: EntityManager) => Promise<T>): Promise<T> {
  if (hasPassed(deadline)) throw new DeadlineExceededError();
  return em.transactional(async (tx) => {
    if (deadline !== undefined) {
      const budget = `${remainingMs(deadline)}ms`;
      await sqlQuery(tx, `SELECT set_config('statement_timeout', ?, true), set_config('lock_timeout', ?, true)`, [budget, budget]);
    }
    return work(tx);
  });
}

/**
 * The timeout of a read that needs no transaction: what is left of the
 * deadline (none without one), for sqlQuery, which has PostgreSQL cancel the
 * query once it passes. Unlike a bounded transaction this costs no round
 * trip unless the deadline is reached (then a cancel request, on a
 * connection of its own). DEADLINE_EXCEEDED once the deadline has passed.
 */
export function readTimeoutMs(deadline: Deadline | undefined): number | undefined {
  if (deadline === undefined) return undefined;
  if (hasPassed(deadline)) throw new DeadlineExceededError();
  return remainingMs(deadline);
}
