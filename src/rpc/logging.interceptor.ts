import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { procedureOf } from "./procedure.js";

export const REQUEST_ID_HEADER = "x-request-id";

function protocolOf(contentType: string | null): string {
  if (!contentType) return "unknown";
  if (contentType.startsWith("application/grpc-web")) return "grpc-web";
  if (contentType.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/**
 * One log line per RPC with its procedure, protocol, code and duration, and a
 * request id: the caller's `x-request-id` when it sends a sane one, else a new
 * one, returned in the response headers either way.
 */
export function loggingInterceptor(log: Logger): Interceptor {
  // On every request's path: one object per line, no copies.
  const line = (requestId: string, procedure: string, protocol: string, code: string, started: number) => ({
    requestId,
    procedure,
    protocol,
    code,
    durationMs: Math.round((performance.now() - started) * 1000) / 1000,
  });
  return (next) => async (req) => {
    const started = performance.now();
    const sent = req.header.get(REQUEST_ID_HEADER);
    const requestId = sent && /^[\w.:-]{1,128}$/.test(sent) ? sent : randomUUID();
    const procedure = procedureOf(req.method);
    const protocol = protocolOf(req.header.get("content-type"));
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, requestId);
      log.info(line(requestId, procedure, protocol, "OK", started), "rpc");
      return res;
    } catch (error) {
      const code = error instanceof ConnectError ? error.code : Code.Unknown;
      if (error instanceof ConnectError) error.metadata.set(REQUEST_ID_HEADER, requestId);
      log.info(line(requestId, procedure, protocol, Code[code], started), "rpc");
      throw error;
    }
  };
}
