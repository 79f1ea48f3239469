import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/** Who is calling, as established by the auth interceptor. */
export interface Principal {
  /**
   * The caller's user id (a lower-case UUID): the token's `sub`, or with
   * AUTH_MODE=none the `x-actor-id` header when it holds a UUID.
   */
  userId: string | undefined;
  /** May do everything (the `tenancy.admin` scope; everyone with AUTH_MODE=none). */
  platformAdmin: boolean;
}

/**
 * Nobody: what a handler sees when no interceptor established a caller, so
 * that a wiring mistake denies instead of granting.
 */
export const NOBODY: Principal = Object.freeze({ userId: undefined, platformAdmin: false });

/** Set by the auth interceptor on every request it lets through. */
export const kPrincipal = createContextKey<Principal>(NOBODY, { description: "the authenticated caller" });

export function principalOf(ctx: HandlerContext): Principal {
  return ctx.values.get(kPrincipal);
}
