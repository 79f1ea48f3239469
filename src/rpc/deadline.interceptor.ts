import type { Interceptor, UnaryRequest } from "@connectrpc/connect";
import { sqlQuery } from "../database/sql.js";
import { kEntityManager } from "./context.js";

const grpcUnits: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The client's deadline in milliseconds from now, from gRPC's or Connect's header. */
export function requestTimeoutMs(header: Headers): number | undefined {
  const grpc = header.get("grpc-timeout");
  if (grpc) {
    const match = /^(\d{1,8})([HMSmun])$/.exec(grpc);
    if (match) return Number(match[1]) * grpcUnits[match[2]!]!;
  }
  const connect = header.get("connect-timeout-ms");
  if (connect && /^\d{1,10}$/.test(connect)) return Number(connect);
  return undefined;
}

/**
 * Makes the client's deadline bound the database work: when a deadline is
 * set, the request runs in a transaction whose statement and lock timeouts
 * end with the deadline, so a slow query is cancelled by PostgreSQL instead
 * of outliving its caller (and is answered DEADLINE_EXCEEDED). Requests
 * without a deadline pay nothing, nor do those that `skip` says need no
 * transaction (a cache hit, a coalesced read that waits for the deadline
 * itself).
 */
export function deadlineInterceptor(options: { skip?: (req: UnaryRequest) => boolean } = {}): Interceptor {
  return (next) => async (req) => {
    if (req.stream) return next(req);
    const timeoutMs = requestTimeoutMs(req.header);
    const holder = req.contextValues.get(kEntityManager);
    if (timeoutMs === undefined || !holder || options.skip?.(req)) return next(req);
    const budget = Math.max(1, Math.floor(timeoutMs));
    return holder.em.transactional(async (tx) => {
      await sqlQuery(tx, `SELECT set_config('statement_timeout', ?, true), set_config('lock_timeout', ?, true)`, [
        `${budget}ms`,
        `${budget}ms`,
      ]);
      holder.use(tx);
      return next(req);
    });
  };
}
