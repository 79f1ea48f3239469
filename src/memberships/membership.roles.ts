import type { Violations } from "../common/errors.js";

/** The role that makes a member an administrator of the tenant (its params and memberships). */
export const ADMIN_ROLE = "admin";

export const MAX_ROLES = 32;
const rolePattern = /^[a-z0-9_.-]{1,64}$/;

export function hasAdminRole(roles: readonly string[] | undefined): boolean {
  return roles?.includes(ADMIN_ROLE) ?? false;
}

/**
 * Checks role names and removes duplicates, keeping the first occurrence's
 * place. Names are not lower-cased for the caller: "Admin" is refused rather
 * than silently becoming "admin".
 */
export function checkRoles(roles: readonly string[], field: string, violations: Violations): string[] {
  const distinct: string[] = [];
  roles.forEach((role, i) => {
    if (!rolePattern.test(role)) {
      violations.add(`${field}[${i}]`, `"${role.slice(0, 64)}" is not a valid role: use 1 to 64 lower-case letters, digits, "_", "-" or "."`);
    } else if (!distinct.includes(role)) {
      distinct.push(role);
    }
  });
  if (distinct.length > MAX_ROLES) violations.add(field, `has ${distinct.length} distinct roles; at most ${MAX_ROLES} are allowed`);
  return distinct;
}
