import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "./logger.js";
import { routes } from "./routes.js";
import { createCors } from "./http/cors.js";
import type { HealthMonitor } from "./health/health.monitor.js";
import { Metrics } from "./metrics/metrics.js";
import type { TenantRules } from "./tenants/tenant.service.js";
import { kEntityManager } from "./rpc/context.js";
import { errorInterceptor } from "./rpc/error.interceptor.js";
import { loggingInterceptor } from "./rpc/logging.interceptor.js";
import { deadlineInterceptor } from "./rpc/deadline.interceptor.js";

export interface ServerDeps {
  orm: MikroORM;
  logger: Logger;
  health: HealthMonitor;
  /** Origins allowed to call from a browser; "*" allows any. */
  corsOrigins?: readonly string[];
  /** Largest accepted request message, in bytes. */
  readMaxBytes?: number;
  tenantRules?: TenantRules;
}

export interface Server {
  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<net.AddressInfo>;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to
   * `graceMs`, then closes whatever is left.
   */
  close(graceMs?: number): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * One cleartext port for every protocol: gRPC needs HTTP/2 with prior
 * knowledge, browsers and curl speak HTTP/1.1. The first bytes of a
 * connection tell which: an HTTP/2 client starts with the connection
 * preface, anything else is handed to the HTTP/1.1 server.
 */
export function createServer(deps: ServerDeps): Server {
  const metrics = new Metrics(deps.orm);
  const rpc = connectNodeAdapter({
    routes: routes({ health: deps.health, tenantRules: deps.tenantRules }),
    // Outermost first: metrics and logs see the code the error mapping chose.
    interceptors: [
      metrics.interceptor(),
      loggingInterceptor(deps.logger),
      errorInterceptor(deps.logger),
      deadlineInterceptor(),
    ],
    contextValues: () => createContextValues().set(kEntityManager, deps.orm.em.fork()),
    readMaxBytes: deps.readMaxBytes ?? 1024 * 1024,
    fallback: (req, res) => {
      const path = req.url?.split("?")[0];
      if (req.method === "GET" && path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok\n");
      } else if (req.method === "GET" && path === "/readyz") {
        // For load balancers that don't speak gRPC: the same state as grpc.health.v1.
        const state = deps.health.state;
        res.writeHead(state === "SERVING" ? 200 : 503, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: state }) + "\n");
      } else if (req.method === "GET" && path === "/metrics") {
        metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { "content-type": metrics.registry.contentType });
            res.end(text);
          },
          () => {
            res.writeHead(500);
            res.end();
          },
        );
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not found\n");
      }
    },
  });
  const cors = createCors(deps.corsOrigins ?? []);
  const handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    if (cors(req, res)) return;
    rpc(req, res);
  };

  const h1 = http.createServer(handler);
  const h2 = http2.createServer({}, handler);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let received = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const n = Math.min(received.length, HTTP2_PREFACE.length);
      const matches = received.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
      if (matches && received.length < HTTP2_PREFACE.length) return; // wait for more
      socket.off("data", sniff);
      socket.pause();
      socket.unshift(received);
      if (matches) {
        // The HTTP/2 session reads what is already buffered itself; resuming
        // here would emit it to nobody.
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", sniff);
  });

  return {
    listen(port, host) {
      return new Promise((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, host, () => {
          tcp.off("error", reject);
          resolve(tcp.address() as net.AddressInfo);
        });
      });
    },
    async close(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
      for (const session of sessions) session.close(); // GOAWAY: no new streams, running ones finish
      h1.closeIdleConnections();
      const deadline = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      const idle = setInterval(() => h1.closeIdleConnections(), 50);
      await closed;
      clearTimeout(deadline);
      clearInterval(idle);
    },
  };
}
