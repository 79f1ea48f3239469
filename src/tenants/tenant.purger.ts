import type { EntityManager } from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";

/**
 * Purges deleted tenants whose purge time has passed, with their remaining
 * memberships, in batches. `FOR UPDATE SKIP LOCKED` lets several instances
 * run this at once without waiting on or double-purging each other's rows;
 * a tenant being restored at that moment holds its row lock and is skipped.
 * Returns the ids purged.
 */
export async function purgeExpiredTenants(em: EntityManager, batchSize = 100): Promise<string[]> {
  return em.transactional(async (tx) => {
    const doomed = await sqlQuery<{ tenant_id: string }>(
      tx,
      `SELECT tenant_id FROM "Tenants"
        WHERE state = 'DELETED' AND purge_at <= now()
        ORDER BY purge_at
        LIMIT ?
        FOR UPDATE SKIP LOCKED`,
      [batchSize],
    );
    if (doomed.length === 0) return [];
    const ids = doomed.map((row) => row.tenant_id);
    await sqlQuery(tx, `DELETE FROM "UserTenantMapping" WHERE "tenantId" = ANY(?::uuid[])`, [ids]);
    await sqlQuery(tx, `DELETE FROM "Tenants" WHERE tenant_id = ANY(?::uuid[])`, [ids]);
    return ids;
  });
}
