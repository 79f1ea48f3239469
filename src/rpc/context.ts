import { createContextKey, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { principalOf } from "../auth/principal.js";

/**
 * The request's own entity manager, forked from the ORM's on first use:
 * a request answered from the cache, or refused, never pays for a fork.
 */
export class RequestEntityManager {
  private current: EntityManager | undefined;

  constructor(private readonly root: EntityManager) {}

  get em(): EntityManager {
    return (this.current ??= this.root.fork());
  }
}

/** Set for every request when it arrives (see server.ts). */
export const kEntityManager = createContextKey<RequestEntityManager | undefined>(undefined, {
  description: "the request's entity manager",
});

export function requestEntityManager(values: ContextValues): EntityManager {
  const holder = values.get(kEntityManager);
  if (!holder) throw new Error("no entity manager in the request context");
  return holder.em;
}

export function entityManager(ctx: HandlerContext): EntityManager {
  return requestEntityManager(ctx.values);
}

/**
 * Who is acting, recorded as created_by / updated_by: the authenticated
 * principal set by the auth interceptor (never anything the request body
 * says).
 */
export function actorOf(ctx: HandlerContext): string | undefined {
  return principalOf(ctx).userId;
}
