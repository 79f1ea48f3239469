import type { EntityManager } from "@mikro-orm/postgresql";

/**
 * Runs hand-written SQL with real bind parameters (`?` placeholders sent as
 * `$n` to PostgreSQL), inside the entity manager's transaction when it has
 * one. MikroORM's `execute` would inline the values into the SQL text
 * instead, which is both weaker and wrong for arrays.
 */
export async function sqlQuery<Row>(
  em: EntityManager,
  sql: string,
  params: readonly unknown[],
  options: { timeoutMs?: number } = {},
): Promise<Row[]> {
  let raw = em.getKnex().raw(sql, params as never);
  // Past the timeout, knex asks PostgreSQL to cancel the query (on another connection).
  if (options.timeoutMs !== undefined) raw = raw.timeout(options.timeoutMs, { cancel: true });
  const transaction = em.getTransactionContext();
  if (transaction) raw = raw.transacting(transaction);
  const result = (await raw) as { rows: Row[] };
  return result.rows;
}
