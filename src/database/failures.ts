import { ConnectionException, DeadlockException } from "@mikro-orm/core";

/**
 * What a failed database call means for its caller, decided in one place for
 * the error interceptor (which status the client gets) and the coalesced
 * inserts (whether a refused batch is worth retrying row by row):
 *
 * - `unavailable`: the database cannot serve now (no connection, shutting
 *   down, out of resources); retrying later may work, retrying now adds load.
 * - `conflict`: a serialization failure or deadlock with a concurrent
 *   transaction; the whole transaction may be retried.
 * - `timeout`: cancelled by a statement or lock timeout (the caller's
 *   deadline) or by a cancel request.
 * - `row`: refused for what the statement holds (SQLSTATE classes 22, data
 *   exception, and 23, integrity constraint violation): one row of a batch
 *   can refuse the whole statement, so each row alone gets its own answer.
 * - `undefined`: none of these; a bug until shown otherwise.
 */
export type DatabaseFailure = "unavailable" | "conflict" | "timeout" | "row" | undefined;

/** Socket errors of a connection that could not be made or broke. */
const socketCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);

/** The SQLSTATE (or socket error code) a pg error, or MikroORM's DriverException around one, carries. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

export function classifyDatabaseError(error: unknown): DatabaseFailure {
  if (error instanceof ConnectionException) return "unavailable";
  if (error instanceof DeadlockException) return "conflict";
  const code = errorCode(error);
  if (code !== undefined) {
    if (socketCodes.has(code)) return "unavailable";
    // 08: connection exception; 53: insufficient resources (too many
    // connections, out of memory or disk); 57P01-57P03: shutting down or
    // starting up.
    if (code.startsWith("08") || code.startsWith("53") || code === "57P01" || code === "57P02" || code === "57P03") return "unavailable";
    if (code === "40001" || code === "40P01") return "conflict";
    // 57014: statement_timeout or a cancel request; 55P03: lock_timeout.
    if (code === "57014" || code === "55P03") return "timeout";
    if (code.startsWith("22") || code.startsWith("23")) return "row";
  }
  // Errors of knex and pg without a SQLSTATE, recognized by their message
  // (MikroORM renames the errors it wraps, so the name cannot be relied on).
  const message = (error as Error | null)?.message ?? "";
  if (/^(Defined|After) query timeout of \d+ms exceeded/.test(message)) return "timeout";
  if (
    (error as Error | null)?.name === "KnexTimeoutError" ||
    /Timeout acquiring a connection|Connection terminated|Client has encountered a connection error|connect ECONNREFUSED|Client was closed|Transaction query already complete/i.test(
      message,
    )
  ) {
    return "unavailable";
  }
  return undefined;
}
