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
 * Runs database work that needs no transaction of its own (reads) within
 * the deadline: in a bounded transaction when there is one, else as it is,
 * at no extra round trip.
 */
export function withinDeadline<T>(em: EntityManager, deadline: Deadline | undefined, work: (em: EntityManager) => Promise<T>): Promise<T> {
  return deadline === undefined ? work(em) : boundedTransaction(em, deadline, work);
}
