import type { JsonObject } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";
import { rowDates } from "../database/rows.js";

/** A stored version. */
export interface StoredParamsSchema {
  name: string;
  version: number;
  /** Absent when the list asked for the basic view. */
  schema?: JsonObject;
  createdAt: Date;
  createdBy: string | null;
}

/** A "ParamsSchemas" row (from pg, or as to_jsonb in an event) as a stored version. */
export function paramsSchemaFromRow(row: Record<string, unknown>, date: (value: unknown) => Date): StoredParamsSchema {
  return {
    name: row.name as string,
    version: row.version as number,
    ...(row.schema !== undefined ? { schema: row.schema as JsonObject } : {}),
    createdAt: date(row.created_at),
    createdBy: (row.created_by as string | null) ?? null,
  };
}

/** Data access for "ParamsSchemas". Versions are only ever inserted. */
export class ParamsSchemaRepository {
  /** `readTimeoutMs`: how long each read outside a transaction may run (what is left of the request's deadline). */
  constructor(
    private readonly em: EntityManager,
    private readonly readTimeoutMs: () => number | undefined = () => undefined,
  ) {}

  private async rows(sql: string, params: unknown[]): Promise<StoredParamsSchema[]> {
    const timeoutMs = this.em.isInTransaction() ? undefined : this.readTimeoutMs();
    const rows = await sqlQuery<Record<string, unknown>>(this.em, sql, params, { timeoutMs });
    const date = rowDates(this.em.getPlatform());
    return rows.map((row) => paramsSchemaFromRow(row, date));
  }

  /**
   * Stores the document as the next version of `name`. Must run in a
   * transaction: concurrent registrations of one name wait for each other on
   * a transaction-scoped advisory lock, so each gets its own version.
   */
  async insertNextVersion(name: string, schema: JsonObject, createdBy: string | null): Promise<StoredParamsSchema> {
    await sqlQuery(this.em, `SELECT pg_advisory_xact_lock(hashtext('tenancy.params_schema'), hashtext(?))`, [name]);
    const [stored] = await this.rows(
      `INSERT INTO "ParamsSchemas" (name, version, schema, created_by)
       SELECT ?::text, coalesce(max(version), 0) + 1, ?::json, ?::uuid FROM "ParamsSchemas" WHERE name = ?::text
       RETURNING name, version, schema, created_at, created_by`,
      [name, JSON.stringify(schema), createdBy, name],
    );
    return stored!;
  }

  /** One version, or the latest when `version` is 0. */
  async find(name: string, version: number): Promise<StoredParamsSchema | undefined> {
    const [found] =
      version === 0
        ? await this.rows(`SELECT * FROM "ParamsSchemas" WHERE name = ? ORDER BY version DESC LIMIT 1`, [name])
        : await this.rows(`SELECT * FROM "ParamsSchemas" WHERE name = ? AND version = ?`, [name, version]);
    return found;
  }

  /** The latest version of each name after `afterName`, by name. */
  listNames(afterName: string | undefined, limit: number, withSchema: boolean): Promise<StoredParamsSchema[]> {
    return this.rows(
      `SELECT DISTINCT ON (name) name, version, created_at, created_by${withSchema ? ", schema" : ""} FROM "ParamsSchemas"
        ${afterName !== undefined ? "WHERE name > ?" : ""} ORDER BY name, version DESC LIMIT ${Number(limit)}`,
      afterName !== undefined ? [afterName] : [],
    );
  }

  /** The versions of `name` after `afterVersion`, oldest first. */
  listVersions(name: string, afterVersion: number, limit: number, withSchema: boolean): Promise<StoredParamsSchema[]> {
    return this.rows(
      `SELECT name, version, created_at, created_by${withSchema ? ", schema" : ""} FROM "ParamsSchemas"
        WHERE name = ? AND version > ? ORDER BY version LIMIT ${Number(limit)}`,
      [name, afterVersion],
    );
  }
}
