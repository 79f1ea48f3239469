import { Code, ConnectError } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import type { Principal } from "../auth/principal.js";
import { PolicyRepository } from "../auth/policy.repository.js";
import { hasAdminRole } from "../memberships/membership.roles.js";
import type { EventQuery } from "./event.repository.js";

/** What decides whether a reader may see an event. */
interface VisibleEvent {
  type: string;
  tenant_id: string | null;
  user_id: string | null;
  resource: Record<string, unknown>;
}

/**
 * Which events a caller who is not a platform administrator may see, by the
 * rules of the reads (src/auth/policy.ts): a tenant's events if they belong
 * to it (GetTenant), a membership's if they administer its tenant or it is
 * their own (GetMembership, ListMemberships). A watcher's view follows its
 * own membership events as they pass, so it gains and loses tenants live.
 */
export class EventVisibility {
  private constructor(
    readonly userId: string,
    private readonly memberOf: Set<string>,
    private readonly adminOf: Set<string>,
  ) {}

  /** The caller's view; undefined for a platform administrator, who sees everything. */
  static async of(principal: Principal, em: () => EntityManager): Promise<EventVisibility | undefined> {
    if (principal.platformAdmin) return undefined;
    if (!principal.userId) throw new ConnectError("only a platform administrator may do this", Code.PermissionDenied);
    const memberships = await new PolicyRepository(em()).membershipsOf(principal.userId);
    return new EventVisibility(
      principal.userId,
      new Set(memberships.map((m) => m.tenantId)),
      new Set(memberships.filter((m) => hasAdminRole(m.roles)).map((m) => m.tenantId)),
    );
  }

  /** PERMISSION_DENIED for a filter on a tenant the caller may not read. */
  checkTenantFilter(tenantId: string | undefined): void {
    if (tenantId !== undefined && !this.memberOf.has(tenantId)) {
      throw new ConnectError("the caller is not a member of this tenant", Code.PermissionDenied);
    }
  }

  /** The same rule as SQL, for ListEvents and a watcher's catch-up. */
  asQuery(): NonNullable<EventQuery["visibleTo"]> {
    return { userId: this.userId, memberOf: [...this.memberOf], adminOf: [...this.adminOf] };
  }

  /**
   * Whether the caller may see this event, applying first what it changes
   * about the caller's own access: one's new membership is visible, and so
   * is the removal of one's membership (the events after it are not).
   */
  admit(event: VisibleEvent): boolean {
    const own = event.user_id === this.userId && event.tenant_id !== null;
    if (own && (event.type === "membership.created" || event.type === "membership.updated")) {
      this.memberOf.add(event.tenant_id!);
      const roles = event.resource.roles;
      if (Array.isArray(roles) && hasAdminRole(roles as string[])) this.adminOf.add(event.tenant_id!);
      else this.adminOf.delete(event.tenant_id!);
    }
    const visible = this.allows(event);
    if (own && event.type === "membership.deleted") {
      this.memberOf.delete(event.tenant_id!);
      this.adminOf.delete(event.tenant_id!);
    }
    return visible;
  }

  private allows(event: VisibleEvent): boolean {
    // Params schemas are readable by every caller (GetParamsSchema).
    if (event.type.startsWith("params_schema.")) return true;
    if (event.tenant_id === null || !this.memberOf.has(event.tenant_id)) return false;
    if (!event.type.startsWith("membership.")) return true;
    return this.adminOf.has(event.tenant_id) || event.user_id === this.userId;
  }
}
