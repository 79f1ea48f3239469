import type http from "node:http";
import type http2 from "node:http2";
import { cors as connectCors } from "@connectrpc/connect";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * CORS for browsers using Connect-Web or gRPC-Web: the methods and headers
 * these protocols need (from @connectrpc/connect's `cors` constants), plus
 * ours, for the origins configured in CORS_ORIGINS ("*" allows any origin,
 * for development). Returns true when the request was a preflight and has
 * been answered.
 */
export function createCors(allowedOrigins: readonly string[]) {
  const any = allowedOrigins.includes("*");
  const origins = new Set(allowedOrigins);
  const allowHeaders = [...connectCors.allowedHeaders, "Authorization", "X-Request-Id", "X-Actor-Id"].join(", ");
  // Tenancy-Event-Sequence: a web client waits for its own write on the change feed.
  const exposeHeaders = [...connectCors.exposedHeaders, "X-Request-Id", "Tenancy-Event-Sequence"].join(", ");
  const allowMethods = connectCors.allowedMethods.join(", ");

  return function applyCors(req: Request, res: Response): boolean {
    const origin = req.headers.origin;
    if (typeof origin !== "string" || !(any || origins.has(origin))) return false;
    res.setHeader("Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any) res.setHeader("Vary", "Origin");
    res.setHeader("Access-Control-Expose-Headers", exposeHeaders);
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
      res.setHeader("Access-Control-Allow-Methods", allowMethods);
      res.setHeader("Access-Control-Allow-Headers", allowHeaders);
      res.setHeader("Access-Control-Max-Age", "7200");
      res.writeHead(204);
      res.end();
      return true;
    }
    return false;
  };
}
