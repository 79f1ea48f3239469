import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DomainError, toConnectError } from "../common/errors.js";
import { procedureOf } from "./procedure.js";
import { classifyDatabaseError } from "../database/failures.js";

/**
 * Turns every error a handler throws into a gRPC status: domain errors keep
 * their code and details, database conditions become the codes a client can
 * act on, and anything else is INTERNAL, logged with its cause and never sent
 * to the client.
 */
const clientGone = new Set(["ERR_STREAM_DESTROYED", "ERR_STREAM_WRITE_AFTER_END", "ERR_STREAM_PREMATURE_CLOSE", "ERR_HTTP2_INVALID_STREAM", "ERR_HTTP2_STREAM_CANCEL"]);

export function toRpcError(error: unknown, log: Logger, procedure: string): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof DomainError) return toConnectError(error);
  // The request's signal, aborted because the client went away while the
  // handler waited on it (nobody reads this answer).
  if ((error as Error | null)?.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled);
  // A stream's response could not be written because the client went away
  // (Connect throws the write error into the handler's stream): nobody reads
  // this answer either.
  if (clientGone.has(String((error as { code?: unknown } | null)?.code))) return new ConnectError("the client went away", Code.Canceled);
  switch (classifyDatabaseError(error)) {
    case "unavailable":
      log.warn({ procedure, err: error }, "database unavailable");
      return new ConnectError("the database is unavailable, retry later", Code.Unavailable);
    case "conflict":
      return new ConnectError("the request conflicted with a concurrent one, retry it", Code.Aborted);
    case "timeout":
      // The statement and lock timeouts are set from the client's deadline.
      return new ConnectError("the database did not answer in time", Code.DeadlineExceeded);
    default:
      // A row refused for its data or a constraint that no repository turned
      // into a domain error is a bug too.
      break;
  }
  log.error({ procedure, err: error }, "internal error");
  return new ConnectError("internal error", Code.Internal);
}

export function errorInterceptor(log: Logger): Interceptor {
  return (next) => async (req) => {
    const procedure = procedureOf(req.method);
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
