import { useQuery } from "@connectrpc/connect-query";
import { skipToken } from "@tanstack/react-query";
import { createContext, useContext } from "react";
import { MembershipService } from "../../gen/tenancy/v1/membership_pb.js";
import type { Identity } from "./session.js";

export interface SessionContextValue {
  identity: Identity;
  /** Only under AUTH_MODE=jwt: forget the token, with the reason to show on the sign-in page. */
  signOut: ((reason?: string) => void) | undefined;
}

export const SessionContext = createContext<SessionContextValue | undefined>(undefined);

export function useSession(): SessionContextValue {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside of the signed-in console");
  return session;
}

/**
 * What the signed-in person may do with one tenant, as src/auth/policy.ts
 * decides it: the console offers nothing else. The service still decides
 * on every call, and its PERMISSION_DENIED is shown where it happens.
 */
export interface TenantPermissions {
  loading: boolean;
  /** Name, domain and state (suspend, activate). */
  editIdentity: boolean;
  editParams: boolean;
  /** Delete, undelete, purge. */
  lifecycle: boolean;
  /** See every membership of the tenant, add, change and remove them. */
  manageMembers: boolean;
  /** The person's own roles in the tenant (undefined for platform administrators who are not members). */
  roles: string[] | undefined;
}

export function useTenantPermissions(tenantId: string): TenantPermissions {
  const { identity } = useSession();
  const mine = useQuery(
    MembershipService.method.listMemberships,
    identity.userId ? { tenantId, userId: identity.userId, pageSize: 1 } : skipToken,
    { retry: false },
  );
  const roles = mine.data?.memberships[0]?.roles;
  if (identity.platformAdmin) {
    return { loading: false, editIdentity: true, editParams: true, lifecycle: true, manageMembers: true, roles };
  }
  const admin = roles?.includes("admin") ?? false;
  return { loading: mine.isPending && identity.userId !== undefined, editIdentity: false, editParams: admin, lifecycle: false, manageMembers: admin, roles };
}
