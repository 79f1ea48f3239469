import type { EntityManager } from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";

/** What the policy needs to know about a membership the caller names. */
export interface MembershipAccess {
  /** The member the target membership belongs to. */
  userId: string;
  /** The caller's roles in the target's tenant, or undefined when the caller is not a member of it. */
  callerRoles: string[] | undefined;
}

/**
 * The policy's reads: each answers with one query on a unique index (the
 * primary key, ("tenantId", "userId"), "Tenants"' domain or lower(name)),
 * so deciding costs one indexed lookup per RPC.
 */
export class PolicyRepository {
  constructor(private readonly em: EntityManager) {}

  /** The user's roles in the tenant, or undefined when the user is not a member (or there is no such tenant). */
  async rolesIn(tenantId: string, userId: string): Promise<string[] | undefined> {
    const rows = await sqlQuery<{ roles: string[] }>(
      this.em,
      `SELECT roles FROM "UserTenantMapping" WHERE "tenantId" = ?::uuid AND "userId" = ?::uuid`,
      [tenantId, userId],
    );
    return rows[0]?.roles;
  }

  /** The membership's owner and the caller's roles in its tenant; undefined when there is no such membership. */
  async membershipAccess(membershipId: string, callerId: string): Promise<MembershipAccess | undefined> {
    const rows = await sqlQuery<{ user_id: string; caller_roles: string[] | null }>(
      this.em,
      `SELECT target."userId" AS user_id, caller.roles AS caller_roles
         FROM "UserTenantMapping" target
         LEFT JOIN "UserTenantMapping" caller ON caller."tenantId" = target."tenantId" AND caller."userId" = ?::uuid
        WHERE target."Id" = ?::uuid`,
      [callerId, membershipId],
    );
    const row = rows[0];
    return row && { userId: row.user_id, callerRoles: row.caller_roles ?? undefined };
  }

  /**
   * The user's roles in the tenant with this (normalized) domain, or
   * undefined when there is no such tenant or the user is not a member of it:
   * one answer for both, so nobody learns which tenants exist.
   */
  async rolesInTenantWithDomain(domain: string, userId: string): Promise<string[] | undefined> {
    const rows = await sqlQuery<{ roles: string[] }>(
      this.em,
      `SELECT m.roles FROM "Tenants" t
         JOIN "UserTenantMapping" m ON m."tenantId" = t.tenant_id AND m."userId" = ?::uuid
        WHERE t.domain = ?`,
      [userId, domain],
    );
    return rows[0]?.roles;
  }

  /** As rolesInTenantWithDomain, by name compared case-insensitively (the unique lower(name) index). */
  async rolesInTenantWithName(name: string, userId: string): Promise<string[] | undefined> {
    const rows = await sqlQuery<{ roles: string[] }>(
      this.em,
      `SELECT m.roles FROM "Tenants" t
         JOIN "UserTenantMapping" m ON m."tenantId" = t.tenant_id AND m."userId" = ?::uuid
        WHERE lower(t.name) = lower(?)`,
      [userId, name],
    );
    return rows[0]?.roles;
  }

  /** Every tenant the user belongs to, with the user's roles there (the change feed's visibility). */
  async membershipsOf(userId: string): Promise<Array<{ tenantId: string; roles: string[] }>> {
    return sqlQuery<{ tenantId: string; roles: string[] }>(
      this.em,
      `SELECT "tenantId", roles FROM "UserTenantMapping" WHERE "userId" = ?::uuid`,
      [userId],
    );
  }
}
