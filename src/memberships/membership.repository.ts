import {
  ForeignKeyConstraintViolationException,
  LockMode,
  UniqueConstraintViolationException,
  type EntityManager,
} from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";
import { insertWithEventSequences } from "../events/event-context.js";
import { rowDates } from "../database/rows.js";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../common/errors.js";
import { MEMBERSHIP_EXISTS, MEMBERSHIP_NOT_FOUND, TENANT_DELETED, TENANT_NOT_FOUND, TENANT_SUSPENDED } from "../common/reasons.js";
import { Membership } from "./membership.entity.js";
import { ADMIN_ROLE } from "./membership.roles.js";

export interface MembershipFilter {
  tenantId?: string;
  userId?: string;
}

/**
 * A `"UserTenantMapping"` row as `pg` returns it, mapped without the ORM for
 * reads that change nothing (see tenantFromRow).
 */
export function membershipFromRow(row: Record<string, unknown>, date: (value: unknown) => Date): Membership {
  return {
    id: row.Id as string,
    tenantId: row.tenantId as string,
    userId: row.userId as string,
    createdBy: (row.createdBy as string | null) ?? null,
    updatedBy: (row.updatedBy as string | null) ?? null,
    createdAt: date(row.createdAt),
    updatedAt: date(row.updatedAt),
    roles: (row.roles as string[] | null) ?? [],
    version: row.version as number,
  };
}

export class MembershipRepository {
  constructor(private readonly em: EntityManager) {}

  /** A plain read, mapped without the ORM; past `timeoutMs` PostgreSQL cancels the query. */
  async findById(id: string, timeoutMs?: number): Promise<Membership> {
    const [row] = await sqlQuery<Record<string, unknown>>(this.em, `SELECT * FROM "UserTenantMapping" WHERE "Id" = ?::uuid`, [id], { timeoutMs });
    if (!row) throw new NotFoundError(MEMBERSHIP_NOT_FOUND, `membership ${id} not found`, { id });
    return membershipFromRow(row, rowDates(this.em.getPlatform()));
  }

  /** NOT_FOUND for a missing tenant, FAILED_PRECONDITION for one that is suspended or deleted. */
  async assertTenantAcceptsMembers(tenantId: string): Promise<void> {
    const [tenant] = await sqlQuery<{ state: string }>(
      this.em,
      `SELECT state FROM "Tenants" WHERE tenant_id = ?::uuid FOR SHARE`,
      [tenantId],
    );
    if (!tenant) throw new NotFoundError(TENANT_NOT_FOUND, `tenant ${tenantId} not found`, { id: tenantId });
    if (tenant.state === "SUSPENDED") {
      throw new FailedPreconditionError(TENANT_SUSPENDED, "the tenant is suspended and accepts no new memberships", { id: tenantId });
    }
    if (tenant.state === "DELETED") {
      throw new FailedPreconditionError(TENANT_DELETED, "the tenant is deleted and accepts no new memberships", { id: tenantId });
    }
  }

  /**
   * Inserts many new memberships with one statement, each only if its tenant
   * is ACTIVE (read under a share lock, as assertTenantAcceptsMembers does)
   * and the user is not already a member (stored, or earlier in the list).
   * Resolves with the ids inserted, each with the sequence of its
   * `membership.created` event; the others are left for insert() to
   * explain. Past `timeoutMs` PostgreSQL cancels it.
   */
  insertMany(memberships: readonly Membership[], timeoutMs?: number): Promise<Map<string, bigint | undefined>> {
    // The rows travel as one JSON document (see TenantRepository.insertMany).
    return insertWithEventSequences(
      this.em,
      `INSERT INTO "UserTenantMapping" ("Id", "tenantId", "userId", "createdBy", "updatedBy", "createdAt", "updatedAt", roles, version)
       SELECT r.id, r.tenant_id, r.user_id, r.created_by, r.created_by, r.created_at, r.created_at, r.roles, 1
         FROM jsonb_to_recordset($1) AS r(id uuid, tenant_id uuid, user_id uuid, created_by uuid, created_at timestamptz, roles text[])
         JOIN "Tenants" t ON t.tenant_id = r.tenant_id AND t.state = 'ACTIVE'
          FOR SHARE OF t
       ON CONFLICT DO NOTHING RETURNING "Id" AS id`,
      memberships.map((m) => ({
        id: m.id,
        tenant_id: m.tenantId,
        user_id: m.userId,
        created_by: m.createdBy,
        created_at: m.createdAt,
        roles: m.roles,
      })),
      timeoutMs,
    );
  }

  /**
   * Inserts a membership. The tenant's existence and the one-membership-per-
   * user rule are the database's to enforce (foreign key, unique index), so
   * that concurrent requests cannot slip between a check and an insert.
   */
  async insert(membership: Membership): Promise<void> {
    this.em.persist(membership);
    try {
      await this.em.flush();
    } catch (error) {
      if (error instanceof ForeignKeyConstraintViolationException) {
        throw new NotFoundError(TENANT_NOT_FOUND, `tenant ${membership.tenantId} not found`, { id: membership.tenantId });
      }
      if (error instanceof UniqueConstraintViolationException) {
        const existing = await this.em.fork().findOne(Membership, { tenantId: membership.tenantId, userId: membership.userId });
        throw new AlreadyExistsError(
          MEMBERSHIP_EXISTS,
          "the user is already a member of this tenant",
          existing ? { membership_id: existing.id } : {},
        );
      }
      throw error;
    }
  }

  /**
   * Loads a membership to change or delete it, in a transaction: first the
   * memberships of its tenant's administrators are locked, in id order, then
   * the membership itself. Every change that could take a tenant's last
   * admin away takes the locks in this order, so concurrent ones queue and
   * each sees what the previous one committed (instead of two admins each
   * demoting the other), and none deadlocks. Also returns the ids of the
   * tenant's administrators, as locked.
   */
  async findForChange(id: string): Promise<{ membership: Membership; adminIds: string[] }> {
    const notFound = () => new NotFoundError(MEMBERSHIP_NOT_FOUND, `membership ${id} not found`, { id });
    // The tenant of a membership never changes, so it may be read unlocked.
    const [target] = await sqlQuery<{ tenantId: string }>(this.em, `SELECT "tenantId" FROM "UserTenantMapping" WHERE "Id" = ?::uuid`, [id]);
    if (!target) throw notFound();
    const admins = await sqlQuery<{ Id: string }>(
      this.em,
      `SELECT "Id" FROM "UserTenantMapping" WHERE "tenantId" = ?::uuid AND ? = ANY(roles) ORDER BY "Id" FOR UPDATE`,
      [target.tenantId, ADMIN_ROLE],
    );
    const membership = await this.em.findOne(Membership, { id }, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!membership) throw notFound();
    return { membership, adminIds: admins.map((row) => row.Id) };
  }

  /** Deletes every membership of a tenant (DeleteTenant with force, PurgeTenant). */
  async deleteOfTenant(tenantId: string): Promise<void> {
    await this.em.nativeDelete(Membership, { tenantId });
  }

  /** Deletes by id; false when there was no such membership. */
  async delete(id: string): Promise<boolean> {
    return (await this.em.nativeDelete(Membership, { id })) > 0;
  }

  /**
   * One page, oldest first. Cursors hold `createdAt` as exact microseconds
   * (see TenantRepository.list) and the id.
   */
  async list(
    filter: MembershipFilter,
    after: [string, string] | undefined,
    limit: number,
    timeoutMs?: number,
  ): Promise<Array<{ membership: Membership; cursor: [string, string] }>> {
    const { sql: where, params } = whereClause(filter);
    const conditions = where ? [where] : [];
    if (after) {
      const created = `(timestamptz 'epoch' + ?::bigint * interval '1 microsecond')`;
      conditions.push(`("createdAt" > ${created} OR ("createdAt" = ${created} AND "Id" > ?::uuid))`);
      params.push(after[0], after[0], after[1]);
    }
    const rows = await sqlQuery<Record<string, unknown>>(
      this.em,
      `SELECT *, (extract(epoch FROM "createdAt") * 1000000)::bigint::text AS cursor_created
         FROM "UserTenantMapping"${conditions.length ? ` WHERE ${conditions.join(" AND ")}` : ""}
        ORDER BY "createdAt", "Id" LIMIT ${Number(limit)}`,
      params,
      { timeoutMs },
    );
    const date = rowDates(this.em.getPlatform());
    return rows.map((row) => ({
      membership: membershipFromRow(row, date),
      cursor: [String(row.cursor_created), String(row.Id)],
    }));
  }

  async count(filter: MembershipFilter, timeoutMs?: number): Promise<number> {
    const { sql: where, params } = whereClause(filter);
    const rows = await sqlQuery<{ count: string }>(
      this.em,
      `SELECT count(*) AS count FROM "UserTenantMapping"${where ? ` WHERE ${where}` : ""}`,
      params,
      { timeoutMs },
    );
    return Number(rows[0]?.count ?? 0);
  }
}

function whereClause(filter: MembershipFilter): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (filter.tenantId) {
    parts.push(`"tenantId" = ?::uuid`);
    params.push(filter.tenantId);
  }
  if (filter.userId) {
    parts.push(`"userId" = ?::uuid`);
    params.push(filter.userId);
  }
  return { sql: parts.join(" AND "), params };
}
