import { LockMode, UniqueConstraintViolationException, type EntityManager } from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";
import { insertWithEventSequences } from "../events/event-context.js";
import { rowDates } from "../database/rows.js";
import { AlreadyExistsError, NotFoundError } from "../common/errors.js";
import { TENANT_DOMAIN_TAKEN, TENANT_NAME_TAKEN, TENANT_NOT_FOUND } from "../common/reasons.js";
import { Tenant } from "./tenant.entity.js";

/** A sortable column of ListTenants, with how its cursor value is read and bound. */
export interface SortColumn {
  /** The column, as written in SQL. */
  column: string;
  desc: boolean;
  /** True for timestamps, whose cursor values are microseconds since the epoch. */
  timestamp: boolean;
}

/** Which tenants a list or count covers. */
export interface TenantFilter {
  /** A compiled AIP-160 filter. */
  where?: { sql: string; params: unknown[] };
  showDeleted: boolean;
  /** Only the tenants this user is a member of. */
  memberOf?: string;
}

export interface ListQuery extends TenantFilter {
  order: SortColumn[];
  /** Cursor values of the last row of the previous page: one per sort column, then the id. */
  after?: string[];
  limit: number;
  /** Past it PostgreSQL cancels the query. */
  timeoutMs?: number;
}

/**
 * A `"Tenants"` row as `pg` returns it, mapped without the ORM: for reads
 * that change nothing and need no identity map (nor its snapshots).
 */
export function tenantFromRow(row: Record<string, unknown>, date: (value: unknown) => Date): Tenant {
  return {
    id: row.tenant_id as string,
    name: row.name as string,
    domain: row.domain as string,
    params: (row.params as Record<string, unknown> | null) ?? null,
    createdAt: date(row.created_at),
    updatedAt: date(row.updated_at),
    version: row.version as number,
    state: row.state as Tenant["state"],
    deletedAt: row.deleted_at == null ? null : date(row.deleted_at),
    purgeAt: row.purge_at == null ? null : date(row.purge_at),
    createdBy: (row.created_by as string | null | undefined) ?? null,
    paramsSchemaName: (row.params_schema_name as string | null) ?? null,
    paramsSchemaVersion: (row.params_schema_version as number | null) ?? null,
  };
}

/** Data access for tenants. Uniqueness is left to the database's indexes. */
export class TenantRepository {
  constructor(private readonly em: EntityManager) {}

  /**
   * The tenant, locked for update in the current transaction, as a managed
   * entity. Plain reads go through TenantLoader instead.
   */
  async findForUpdate(id: string): Promise<Tenant> {
    const tenant = await this.em.findOne(Tenant, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!tenant) throw new NotFoundError(TENANT_NOT_FOUND, `tenant ${id} not found`, { id });
    return tenant;
  }

  /**
   * The tenants with these ids (valid, lowercase UUIDs), deleted or not, in
   * one indexed query; past `timeoutMs` PostgreSQL cancels it.
   */
  async findManyById(ids: readonly string[], timeoutMs?: number): Promise<Tenant[]> {
    return this.findManyBySql(`SELECT * FROM "Tenants" WHERE tenant_id = ANY(?::uuid[])`, ids, timeoutMs);
  }

  /** The tenants that are not deleted with these normalized domains, as findManyById. */
  async findManyByDomain(domains: readonly string[], timeoutMs?: number): Promise<Tenant[]> {
    return this.findManyBySql(`SELECT * FROM "Tenants" WHERE domain = ANY(?::text[]) AND state <> 'DELETED'`, domains, timeoutMs);
  }

  private async findManyBySql(sql: string, keys: readonly string[], timeoutMs: number | undefined): Promise<Tenant[]> {
    const rows = await sqlQuery<Record<string, unknown>>(this.em, sql, [keys], { timeoutMs });
    const date = rowDates(this.em.getPlatform());
    return rows.map((row) => tenantFromRow(row, date));
  }

  private async findOneBySql(sql: string, params: unknown[], timeoutMs: number | undefined): Promise<Tenant | undefined> {
    const rows = await sqlQuery<Record<string, unknown>>(this.em, sql, params, { timeoutMs });
    return rows[0] && tenantFromRow(rows[0], rowDates(this.em.getPlatform()));
  }

  /** Deleted tenants are not found by name (AIP-164). Past `timeoutMs` PostgreSQL cancels the query. */
  async findByName(name: string, timeoutMs?: number): Promise<Tenant> {
    // lower(name) is what the unique index holds, so this is an index lookup.
    const tenant = await this.findOneBySql(
      `SELECT * FROM "Tenants" WHERE lower(name) = lower(?) AND state <> 'DELETED' LIMIT 1`,
      [name],
      timeoutMs,
    );
    if (!tenant) throw new NotFoundError(TENANT_NOT_FOUND, `no tenant has the name ${name}`, { name });
    return tenant;
  }

  /** Inserts a new (unpersisted) tenant with one statement, turning unique violations into ALREADY_EXISTS. */
  async insert(tenant: Tenant): Promise<void> {
    try {
      // As an entity instance, not a plain object: MikroORM reads a plain
      // object given to insert() as query data, walking into every nested
      // value (params included) to find entities and references, where a
      // client's `constructor` key made it fail. An entity goes through the
      // property types, which turn params into text first.
      await this.em.insert(Object.assign(new Tenant(), tenant));
    } catch (error) {
      throw translateUniqueViolation(error);
    }
  }

  /**
   * Inserts many new tenants (version 1, updated when created) with one
   * statement, skipping those whose name or domain is taken (by a stored
   * tenant or an earlier one of the list). Resolves with the ids inserted,
   * each with the sequence of its `tenant.created` event; past `timeoutMs`
   * PostgreSQL cancels it.
   */
  insertMany(tenants: readonly Tenant[], timeoutMs?: number): Promise<Map<string, bigint | undefined>> {
    // The rows travel as one JSON document: one JSON.stringify here and
    // PostgreSQL's JSON parser there, instead of a text[] literal to escape
    // per column.
    return insertWithEventSequences(
      this.em,
      `INSERT INTO "Tenants" (tenant_id, name, domain, params, created_at, updated_at, version, state, created_by, params_schema_name, params_schema_version)
       SELECT id, name, domain, params, created_at, created_at, 1, state, created_by, params_schema_name, params_schema_version
         FROM jsonb_to_recordset($1)
           AS r(id uuid, name text, domain text, params jsonb, created_at timestamptz, state text, created_by uuid,
                params_schema_name text, params_schema_version integer)
       ON CONFLICT DO NOTHING RETURNING tenant_id AS id`,
      tenants.map((t) => ({
        id: t.id,
        name: t.name,
        domain: t.domain,
        params: t.params ?? {},
        created_at: t.createdAt,
        state: t.state,
        created_by: t.createdBy,
        params_schema_name: t.paramsSchemaName,
        params_schema_version: t.paramsSchemaVersion,
      })),
      timeoutMs,
    );
  }

  /** Flushes pending changes, turning unique violations into ALREADY_EXISTS. */
  async flush(): Promise<void> {
    try {
      await this.em.flush();
    } catch (error) {
      throw translateUniqueViolation(error);
    }
  }

  /**
   * One page of tenants, each with its cursor: its sort key values, then its
   * id. Timestamps in cursors are the database's exact microseconds, not
   * JavaScript Dates (milliseconds), so that a page never starts in the middle
   * of a run of rows that differ below a millisecond.
   */
  async list(query: ListQuery): Promise<Array<{ tenant: Tenant; cursor: string[] }>> {
    const { conditions, params } = filterConditions(query);
    if (query.after) {
      const keyset = keysetCondition(query.order, query.after);
      conditions.push(keyset.sql);
      params.push(...keyset.params);
    }
    const cursorColumns = query.order
      .filter((c) => c.timestamp)
      .map((c) => `${microseconds(c.column)} AS "cursor_${c.column}"`);
    const orderBy = [...query.order.map((c) => `${c.column} ${c.desc ? "DESC" : "ASC"}`), "tenant_id ASC"].join(", ");
    const sql =
      `SELECT *${cursorColumns.map((c) => `, ${c}`).join("")} FROM "Tenants"` +
      (conditions.length ? ` WHERE ${conditions.join(" AND ")}` : "") +
      ` ORDER BY ${orderBy} LIMIT ${Number(query.limit)}`;
    const rows = await sqlQuery<Record<string, unknown>>(this.em, sql, params, { timeoutMs: query.timeoutMs });
    const date = rowDates(this.em.getPlatform());
    return rows.map((row) => ({
      tenant: tenantFromRow(row, date),
      cursor: [
        ...query.order.map((c) => String(c.timestamp ? row[`cursor_${c.column}`] : row[c.column])),
        String(row.tenant_id),
      ],
    }));
  }

  async count(filter: TenantFilter, timeoutMs?: number): Promise<number> {
    const { conditions, params } = filterConditions(filter);
    const rows = await sqlQuery<{ count: string }>(
      this.em,
      `SELECT count(*) AS count FROM "Tenants"${conditions.length ? ` WHERE ${conditions.join(" AND ")}` : ""}`,
      params,
      { timeoutMs },
    );
    return Number(rows[0]?.count ?? 0);
  }

  /** Removes the row for good (PurgeTenant); its memberships must be gone first. */
  async delete(id: string): Promise<void> {
    await this.em.nativeDelete(Tenant, { id });
  }
}

function filterConditions(filter: TenantFilter): { conditions: string[]; params: unknown[] } {
  const conditions: string[] = filter.showDeleted ? [] : [`state <> 'DELETED'`];
  const params: unknown[] = [];
  if (filter.where) {
    conditions.push(`(${filter.where.sql})`);
    params.push(...filter.where.params);
  }
  if (filter.memberOf !== undefined) {
    conditions.push(`tenant_id IN (SELECT "tenantId" FROM "UserTenantMapping" WHERE "userId" = ?::uuid)`);
    params.push(filter.memberOf);
  }
  return { conditions, params };
}

function microseconds(column: string): string {
  return `(extract(epoch FROM ${column}) * 1000000)::bigint::text`;
}

function boundValue(column: SortColumn): string {
  return column.timestamp ? `(timestamptz 'epoch' + ?::bigint * interval '1 microsecond')` : "?::text";
}

/**
 * `(a, b, id) > (x, y, z)` with a direction per column, expanded as
 * `a > x OR (a = x AND (b > y OR (b = y AND id > z)))` because row comparison
 * cannot mix directions.
 */
function keysetCondition(order: SortColumn[], after: string[]): { sql: string; params: unknown[] } {
  const columns: SortColumn[] = [...order, { column: "tenant_id", desc: false, timestamp: false }];
  const params: unknown[] = [];
  const build = (i: number): string => {
    const c = columns[i]!;
    const value = c.column === "tenant_id" ? "?::uuid" : boundValue(c);
    params.push(after[i]);
    const strict = `${c.column} ${c.desc ? "<" : ">"} ${value}`;
    if (i === columns.length - 1) return strict;
    params.push(after[i]);
    const equal = `${c.column} = ${value}`;
    return `(${strict} OR (${equal} AND ${build(i + 1)}))`;
  };
  return { sql: build(0), params };
}

export function translateUniqueViolation(error: unknown): unknown {
  if (!(error instanceof UniqueConstraintViolationException)) return error;
  const constraint = String((error as { constraint?: string }).constraint ?? "");
  if (constraint.includes("domain")) {
    return new AlreadyExistsError(TENANT_DOMAIN_TAKEN, "another tenant already has this domain");
  }
  if (constraint.includes("name")) {
    return new AlreadyExistsError(TENANT_NAME_TAKEN, "another tenant already has this name (names are compared case-insensitively)");
  }
  return error;
}
