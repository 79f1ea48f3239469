import type { EntityManager } from "@mikro-orm/postgresql";

/**
 * Runs hand-written SQL with real bind parameters (`?` placeholders sent as
 * `$n` to PostgreSQL), inside the entity manager's transaction when it has
 * one. MikroORM's `execute` would inline the values into the SQL text
 * instead, which is both weaker and wrong for arrays.
 */
export async function sqlQuery<Row>(em: EntityManager, sql: string, params: readonly unknown[]): Promise<Row[]> {
  let raw = em.getKnex().raw(sql, params as never);
  const transaction = em.getTransactionContext();
  if (transaction) raw = raw.transacting(transaction);
  const result = (await raw) as { rows: Row[] };
  return result.rows;
}
