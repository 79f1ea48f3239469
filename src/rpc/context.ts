import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { principalOf } from "../auth/principal.js";

/** The request's own fork of the entity manager, set when the request arrives. */
export const kEntityManager = createContextKey<EntityManager | undefined>(undefined, {
  description: "the request's entity manager",
});

export function entityManager(ctx: HandlerContext): EntityManager {
  const em = ctx.values.get(kEntityManager);
  if (!em) throw new Error("no entity manager in the handler context");
  return em;
}

/**
 * Who is acting, recorded as created_by / updated_by: the authenticated
 * principal set by the auth interceptor (never anything the request body
 * says).
 */
export function actorOf(ctx: HandlerContext): string | undefined {
  return principalOf(ctx).userId;
}
