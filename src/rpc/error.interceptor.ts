import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ConnectionException, DeadlockException } from "@mikro-orm/core";
import type { Logger } from "pino";
import { DomainError, toConnectError } from "../common/errors.js";

/** SQLSTATEs and socket errors that mean "the database is not there right now". */
const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
  "53300", // too_many_connections
]);

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function isUnavailable(error: unknown): boolean {
  if (error instanceof ConnectionException) return true;
  const code = errorCode(error);
  if (code && unavailableCodes.has(code)) return true;
  const name = (error as Error | null)?.name;
  const message = (error as Error | null)?.message ?? "";
  // The pool timing out on acquire, or a connection that died under a query.
  return (
    name === "KnexTimeoutError" ||
    /Connection terminated|Client has encountered a connection error|connect ECONNREFUSED|Client was closed|Timeout acquiring a connection|Transaction query already complete/i.test(message)
  );
}

/**
 * Turns every error a handler throws into a gRPC status: domain errors keep
 * their code and details, database conditions become the codes a client can
 * act on, and anything else is INTERNAL, logged with its cause and never sent
 * to the client.
 */
export function toRpcError(error: unknown, log: Logger, procedure: string): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof DomainError) return toConnectError(error);
  // The request's signal, aborted because the client went away while the
  // handler waited on it (nobody reads this answer).
  if ((error as Error | null)?.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled);
  if (isUnavailable(error)) {
    log.warn({ procedure, err: error }, "database unavailable");
    return new ConnectError("the database is unavailable, retry later", Code.Unavailable);
  }
  // Raw pg errors and MikroORM's DriverExceptions both carry the SQLSTATE.
  const code = errorCode(error);
  if (error instanceof DeadlockException || code === "40001" || code === "40P01") {
    return new ConnectError("the request conflicted with a concurrent one, retry it", Code.Aborted);
  }
  // 57014: cancelled by statement_timeout; 55P03: lock_timeout (both set from
  // the client's deadline by the deadline interceptor).
  if (code === "57014" || code === "55P03") {
    return new ConnectError("the database did not answer in time", Code.DeadlineExceeded);
  }
  log.error({ procedure, err: error }, "internal error");
  return new ConnectError("internal error", Code.Internal);
}

export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const procedure = req.method.parent.typeName + "/" + req.method.name;
    try {
      const res = await next(req);
      // A stream's errors surface while its messages are read, after this
      // call returned: they are mapped as they pass.
      return res.stream ? { ...res, message: mapStreamErrors(res.message, log, procedure) } : res;
    } catch (error) {
      throw toRpcError(error, log, procedure);
    }
  };
}

async function* mapStreamErrors<T>(messages: AsyncIterable<T>, log: Logger, procedure: string): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw toRpcError(error, log, procedure);
  }
}
