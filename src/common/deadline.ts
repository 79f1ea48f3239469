/**
 * A caller's deadline: the time, on Date.now()'s clock (epoch milliseconds),
 * after which it no longer waits for an answer. Parsed once when a request
 * arrives (src/rpc/deadline.ts) and passed explicitly to the work done for
 * it, so every part counts the time already spent.
 */
export type Deadline = number;

/**
 * The milliseconds left before a deadline, as a timeout for PostgreSQL or
 * knex: at least 1, because 0 means "no timeout" to both.
 */
export function remainingMs(deadline: Deadline): number {
  return Math.max(1, Math.ceil(deadline - Date.now()));
}

/** Whether the deadline has passed. */
export function hasPassed(deadline: Deadline | undefined): boolean {
  return deadline !== undefined && deadline <= Date.now();
}
