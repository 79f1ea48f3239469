import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";

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
  return (next) => async (req) => {
    const started = performance.now();
    const sent = req.header.get(REQUEST_ID_HEADER);
    const requestId = sent && /^[\w.:-]{1,128}$/.test(sent) ? sent : randomUUID();
    const fields = {
      requestId,
      procedure: `${req.method.parent.typeName}/${req.method.name}`,
      protocol: protocolOf(req.header.get("content-type")),
    };
    try {
      const res = await next(req);
      res.header.set(REQUEST_ID_HEADER, requestId);
      log.info({ ...fields, code: "OK", durationMs: +(performance.now() - started).toFixed(3) }, "rpc");
      return res;
    } catch (error) {
      const code = error instanceof ConnectError ? error.code : Code.Unknown;
      if (error instanceof ConnectError) error.metadata.set(REQUEST_ID_HEADER, requestId);
      log.info({ ...fields, code: Code[code], durationMs: +(performance.now() - started).toFixed(3) }, "rpc");
      throw error;
    }
  };
}
