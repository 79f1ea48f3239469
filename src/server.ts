import type http from "node:http";
import type net from "node:net";
import { createContextValues } from "@connectrpc/connect";
import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "./logger.js";
import { services } from "./routes.js";
import { createCors } from "./http/cors.js";
import { createConsoleHandler } from "./http/console.js";
import { createOnePort, type Request, type Response } from "./http/one-port.js";
import type { TlsFiles } from "./http/tls.js";
import type { HealthMonitor } from "./health/health.monitor.js";
import { Metrics } from "./metrics/metrics.js";
import type { TenantRules } from "./tenants/tenant.service.js";
import { kEntityManager, RequestEntityManager } from "./rpc/context.js";
import { errorInterceptor } from "./rpc/error.interceptor.js";
import { loggingInterceptor } from "./rpc/logging.interceptor.js";
import { deadlineFromHeaders, kDeadline } from "./rpc/deadline.js";
import { isLoopbackHost, type AuthConfig } from "./auth/auth.config.js";
import { authInterceptor } from "./auth/auth.interceptor.js";
import { createTenantCaching, isAnsweredFromCache, type TenantCaching, type TenantCachingOptions } from "./cache/tenant-caching.js";
import { TenantLoader } from "./tenants/tenant.loader.js";
import { TenantInserter } from "./tenants/tenant.inserter.js";
import { MembershipInserter } from "./memberships/membership.inserter.js";
import { createGrpcFastPath, responseEncodingInterceptor } from "./rpc/grpc-fast-path.js";
import { createRpcHandler } from "./rpc/rpc-handler.js";
import { decodedRequestInterceptor } from "./rpc/request-reader.js";
import { tenantDecoders, tenantEncoders } from "./tenants/tenant.codecs.js";
import { EventHub, type EventHubOptions } from "./events/event.hub.js";
import { defaultWatchOptions, type WatchOptions } from "./events/event.service.js";
import { EventRelay, type EventRelayOptions } from "./events/event.relay.js";
import { ParamsSchemaRegistry } from "./params-schemas/params-schema.registry.js";
import { ParamsSchemaService } from "../gen/tenancy/v1/params_schema_pb.js";

export interface ServerDeps {
  orm: MikroORM;
  logger: Logger;
  health: HealthMonitor;
  /** Origins allowed to call from a browser; "*" allows any. */
  corsOrigins?: readonly string[];
  /** Largest accepted request message, in bytes. */
  readMaxBytes?: number;
  /** How callers are authenticated; none (everyone is a platform administrator, loopback only) when unset. */
  auth?: AuthConfig;
  tenantRules?: TenantRules;
  /** Keys in the tenant cache (see src/cache/); 0 disables it. Default 10,000. */
  tenantCacheSize?: number;
  /** Timings of the cache's invalidation listener (tests shorten them). */
  tenantCacheListener?: TenantCachingOptions["listener"];
  /** WatchEvents: progress interval, backlog bound (see src/events/event.service.ts). */
  watch?: Partial<WatchOptions>;
  /** How the event hub reads the feed (tests make its batches small). */
  eventHub?: Pick<EventHubOptions, "pollMs" | "fetchSize">;
  /** Relay the change feed to NATS JetStream (EVENTS_NATS_*); unset: no relay. */
  eventRelay?: Omit<EventRelayOptions, "databaseUrl" | "log">;
  /** Serve the admin console at /console/ (src/http/console.ts); off when unset. */
  console?: { dir?: string; oidc?: { issuer: string; clientId: string; scopes: string } };
  /** Serve HTTPS with this certificate and key; cleartext when unset. */
  tls?: TlsFiles;
  /** How long a new connection may take to finish TLS and send its first bytes. Default 10 s. */
  connectionPrefaceTimeoutMs?: number;
  /** How long an HTTP/2 connection that never opens a stream stays open. Default 30 s. */
  http2NoStreamTimeoutMs?: number;
  /** Serve unary gRPC through src/rpc/grpc-fast-path.ts (default); false sends every call through Connect. */
  grpcFastPath?: boolean;
}

export interface Server {
  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<net.AddressInfo>;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to
   * `graceMs`, then closes whatever is left.
   */
  close(graceMs?: number): Promise<void>;
  /** Reads the TLS certificate and key files again (SIGHUP); throws, keeping the current ones, when they do not load. */
  reloadTls(): void;
  /** Whether it serves HTTPS. */
  readonly secure: boolean;
  /** The tenant cache and its invalidation listener (for tests and diagnostics). */
  readonly tenantCache: TenantCaching;
  /** The coalescing reader of GetTenant and LookupTenant by domain (for tests and diagnostics). */
  readonly tenantLoader: TenantLoader;
  /** The coalescing writers of CreateTenant and CreateMembership (for tests and diagnostics). */
  readonly tenantInserter: TenantInserter;
  readonly membershipInserter: MembershipInserter;
  /** The change feed's live side: one LISTEN connection, shared by every watcher. */
  readonly eventHub: EventHub;
  /** The NATS relay of the change feed, when configured. */
  readonly eventRelay: EventRelay | undefined;
  /** The compiled params schemas (for tests and diagnostics). */
  readonly paramsSchemas: ParamsSchemaRegistry;
}

/** Every protocol on one port (see src/http/one-port.ts). */
export function createServer(deps: ServerDeps): Server {
  const auth: AuthConfig = deps.auth ?? { mode: "none" };
  const metrics = new Metrics(deps.orm);
  const tenantCache = createTenantCaching({
    databaseUrl: deps.orm.config.get("clientUrl")!,
    capacity: deps.tenantCacheSize ?? 10_000,
    log: deps.logger,
    registry: metrics.registry,
    listener: deps.tenantCacheListener,
  });
  // Outermost first: metrics and logs see the code the error mapping chose.
  const interceptors = [
    metrics.interceptor(),
    loggingInterceptor(deps.logger),
    // Refusals of malformed or oversized requests are answered here, so that
    // the metrics and the access log count them.
    decodedRequestInterceptor(),
    errorInterceptor(deps.logger),
    // Inside the error mapping: a response that fails to encode is INTERNAL, logged and counted.
    responseEncodingInterceptor(),
    authInterceptor(auth, deps.logger),
    // Inside authentication and authorization (a hit is still authorized);
    // a write's invalidation comes after the handler, so after its commit.
    tenantCache.interceptor,
  ];
  const tenantLoader = new TenantLoader(deps.orm.em);
  const paramsSchemas = new ParamsSchemaRegistry(deps.orm.em);
  const tenantInserter = new TenantInserter(deps.orm.em, paramsSchemas);
  const membershipInserter = new MembershipInserter(deps.orm.em);
  const watch: WatchOptions = { ...defaultWatchOptions, ...deps.watch };
  // A watcher drains the hub's batches one by one: its backlog bound must hold at least one.
  const eventHub = new EventHub(deps.orm.em, {
    databaseUrl: deps.orm.config.get("clientUrl")!,
    log: deps.logger,
    ...deps.eventHub,
    fetchSize: Math.min(deps.eventHub?.fetchSize ?? 1_000, watch.maxBacklog),
  });
  const eventRelay = deps.eventRelay
    ? new EventRelay(deps.orm.em, { ...deps.eventRelay, databaseUrl: deps.orm.config.get("clientUrl")!, log: deps.logger })
    : undefined;
  metrics.coalescing({
    get_tenant: () => tenantLoader.stats.byId,
    lookup_tenant_by_domain: () => tenantLoader.stats.byDomain,
    create_tenant: () => tenantInserter.stats,
    create_membership: () => membershipInserter.stats,
  });
  // Made when a request arrives, before its body is read: the deadline
  // counts from here, and the services bound their database work by it.
  const contextValues = (headers: http.IncomingHttpHeaders) =>
    createContextValues().set(kEntityManager, new RequestEntityManager(deps.orm.em)).set(kDeadline, deadlineFromHeaders(headers));
  const readMaxBytes = deps.readMaxBytes ?? 1024 * 1024;
  const serveConsole = deps.console
    ? createConsoleHandler({
        dir: deps.console.dir,
        client: { authMode: auth.mode, ...(deps.console.oidc ? { oidc: deps.console.oidc } : {}) },
        log: deps.logger,
      })
    : () => false;
  // protobuf-es stops at 100 nested messages, and Connect reports such a
  // request as INTERNAL. Deeply nested params (each JSON level is two
  // messages) parse up to this limit and are then refused by our own
  // validation with INVALID_ARGUMENT; the 1 MiB size limit bounds the rest.
  const binaryOptions = { recursionLimit: 2_000 };
  const registrations = services({
    health: deps.health,
    tenantLoader,
    tenantInserter,
    membershipInserter,
    paramsSchemas,
    tenantRules: deps.tenantRules,
    eventHub,
    watch,
  });
  const decoders = tenantDecoders();
  const rpc = createRpcHandler({
    services: registrations,
    interceptors,
    contextValues,
    readMaxBytes,
    binaryOptions,
    decoders,
    log: deps.logger,
    fallback: (req, res) => {
      if (serveConsole(req, res)) return;
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
  // Unary gRPC with binary protobuf, the common case, skips Connect's generic
  // protocol layer, with the same interceptors and handlers (src/rpc/grpc-fast-path.ts).
  const grpcFastPath =
    (deps.grpcFastPath ?? true)
      ? createGrpcFastPath({
          services: registrations,
          interceptors,
          contextValues,
          readMaxBytes,
          binaryOptions,
          sharedResponse: isAnsweredFromCache,
          encoders: tenantEncoders(),
          decoders,
          log: deps.logger,
        })
      : undefined;
  const cors = createCors(deps.corsOrigins ?? []);
  const port = createOnePort({
    handler: (req: Request, res: Response) => {
      if (cors(req, res)) return;
      rpc(req, res);
    },
    takeStream: grpcFastPath?.takeStream,
    prefaceTimeoutMs: deps.connectionPrefaceTimeoutMs ?? 10_000,
    idleSessionTimeoutMs: deps.http2NoStreamTimeoutMs ?? 30_000,
    tls: deps.tls,
    log: deps.logger,
  });

  return {
    tenantCache,
    tenantLoader,
    tenantInserter,
    membershipInserter,
    eventHub,
    eventRelay,
    paramsSchemas,
    listen(portNumber, host) {
      // The configuration refuses this too; this guard also covers servers built in code.
      if (auth.mode === "none" && !isLoopbackHost(host)) {
        return Promise.reject(new Error(`without authentication (auth mode none) the server listens only on loopback, not on "${host}"`));
      }
      tenantCache.start();
      eventHub.start();
      eventRelay?.start();
      return port.listen(portNumber, host);
    },
    async close(graceMs = 10_000) {
      // Watch streams never end by themselves: they are ended first (UNAVAILABLE,
      // "resume elsewhere"), so that they don't hold the shutdown for its grace period.
      // The relay needs no request to finish: it records what was acknowledged and lets the lock go.
      await port.close(graceMs, async () => {
        await Promise.all([eventHub.stop(), eventRelay?.stop()]);
      });
      await tenantCache.stop();
    },
    reloadTls() {
      port.reloadTls();
    },
    get secure() {
      return port.secure;
    },
  };
}
