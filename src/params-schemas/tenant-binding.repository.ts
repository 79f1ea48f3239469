import type { JsonObject } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";
import type { SchemaVersionRef } from "./params-schema.binding.js";

/** What checking and rebinding need of a tenant. */
export interface BoundTenant {
  id: string;
  name: string;
  params: JsonObject;
  binding: SchemaVersionRef | null;
}

/** The SQL of CheckParamsSchema and RebindParamsSchema over "Tenants". */
export class TenantBindingRepository {
  /** `readTimeoutMs`: how long each read outside a transaction may run (what is left of the request's deadline). */
  constructor(
    private readonly em: EntityManager,
    private readonly readTimeoutMs: () => number | undefined = () => undefined,
  ) {}

  /**
   * The next tenants (deleted ones excepted) that match `where`, in id order
   * after `afterId`; locked for update when `lock` (in the caller's
   * transaction).
   */
  async scan(where: { sql: string; params: unknown[] } | undefined, afterId: string | undefined, limit: number, lock: boolean): Promise<BoundTenant[]> {
    const conditions = [`state <> 'DELETED'`];
    const params: unknown[] = [];
    if (where) {
      conditions.push(`(${where.sql})`);
      params.push(...where.params);
    }
    if (afterId !== undefined) {
      conditions.push(`tenant_id > ?::uuid`);
      params.push(afterId);
    }
    const rows = await sqlQuery<Record<string, unknown>>(
      this.em,
      `SELECT tenant_id, name, params, params_schema_name, params_schema_version FROM "Tenants"
        WHERE ${conditions.join(" AND ")} ORDER BY tenant_id LIMIT ${Number(limit)}${lock ? " FOR UPDATE" : ""}`,
      params,
      { timeoutMs: this.em.isInTransaction() ? undefined : this.readTimeoutMs() },
    );
    return rows.map((row) => ({
      id: row.tenant_id as string,
      name: row.name as string,
      params: (row.params as JsonObject | null) ?? {},
      binding: row.params_schema_name == null ? null : { name: row.params_schema_name as string, version: row.params_schema_version as number },
    }));
  }

  /** Binds these (locked) tenants to `binding` with their new params, in one statement; each gets a new etag. */
  async rebind(tenants: ReadonlyArray<{ id: string; params: JsonObject }>, binding: SchemaVersionRef | null): Promise<void> {
    if (tenants.length === 0) return;
    await sqlQuery(
      this.em,
      `UPDATE "Tenants" AS t
          SET params = r.params, params_schema_name = ?::text, params_schema_version = ?::integer,
              updated_at = clock_timestamp(), version = t.version + 1
         FROM jsonb_to_recordset(?::jsonb) AS r(id uuid, params jsonb)
        WHERE t.tenant_id = r.id`,
      [binding?.name ?? null, binding?.version ?? null, JSON.stringify(tenants.map((t) => ({ id: t.id, params: t.params })))],
    );
  }
}
