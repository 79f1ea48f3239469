import { Writable } from "node:stream";
import { inject } from "vitest";
import type { MikroORM } from "@mikro-orm/postgresql";
import pg from "pg";
import { createTenancyClients, type TenancyClients } from "../../src/client.js";
import { initORM, migrate } from "../../src/database/orm.js";
import { createLogger } from "../../src/logger.js";
import { createServer, type ServerDeps } from "../../src/server.js";
import type { TenantCaching } from "../../src/cache/tenant-caching.js";
import type { TenantLoader } from "../../src/tenants/tenant.loader.js";
import type { TenantInserter } from "../../src/tenants/tenant.inserter.js";
import type { MembershipInserter } from "../../src/memberships/membership.inserter.js";
import type { ParamsSchemaRegistry } from "../../src/params-schemas/params-schema.registry.js";
import { HealthMonitor } from "../../src/health/health.monitor.js";
import type { EventHub } from "../../src/events/event.hub.js";
import type { EventRelay } from "../../src/events/event.relay.js";
import { createTestDatabase } from "./database.js";

export interface TestServer {
  baseUrl: string;
  port: number;
  orm: MikroORM;
  health: HealthMonitor;
  /** Direct SQL on the test database, to check what the service stored. */
  sql: pg.Pool;
  /** Typed clients over the Connect protocol on HTTP/1.1, with JSON. */
  connect: TenancyClients;
  /** Typed clients over gRPC on HTTP/2. */
  grpc: TenancyClients;
  /** JSON log lines the server wrote. */
  logs: Record<string, unknown>[];
  /** The test database's URL (pass as `databaseUrl` to start a second instance on it). */
  databaseUrl: string;
  tenantCache: TenantCaching;
  tenantLoader: TenantLoader;
  tenantInserter: TenantInserter;
  membershipInserter: MembershipInserter;
  eventHub: EventHub;
  eventRelay: EventRelay | undefined;
  paramsSchemas: ParamsSchemaRegistry;
  close(): Promise<void>;
}

/**
 * A full server on an ephemeral port, on a fresh database migrated with the
 * real migrations, as each test file's world.
 */
export interface TestServerOptions {
  corsOrigins?: string[];
  /** How often the health monitor probes the database. */
  healthIntervalMs?: number;
  /** Another PostgreSQL server than the suite's (for tests that stop it). */
  databaseServerUrl?: string;
  poolSize?: number;
  acquireTimeoutMs?: number;
  /** Run on this existing database instead of a fresh one (it is not dropped on close). */
  databaseUrl?: string;
  tenantCacheSize?: number;
  tenantCacheListener?: ServerDeps["tenantCacheListener"];
  /** How callers are authenticated; default none (every caller is a platform administrator). */
  auth?: ServerDeps["auth"];
  /** WatchEvents timings (tests shorten the progress interval). */
  watch?: ServerDeps["watch"];
  eventHub?: ServerDeps["eventHub"];
  /** Relay the change feed to NATS (see test/support/nats.ts); unset: no relay, as without EVENTS_NATS_URL. */
  eventRelay?: ServerDeps["eventRelay"];
  /** Serve the admin console (a build directory, and OIDC sign-in settings). */
  console?: ServerDeps["console"];
  /** Serve HTTPS with this certificate (the clients trust `ca`). */
  tls?: ServerDeps["tls"] & { ca: string };
  connectionPrefaceTimeoutMs?: number;
  http2NoStreamTimeoutMs?: number;
  /** Default: on unless GRPC_FAST_PATH=off (CI runs the suite both ways). */
  grpcFastPath?: boolean;
}

/** Whether this run serves unary gRPC through the fast path (GRPC_FAST_PATH, as the server reads it). */
export const fastPathByDefault = !/^(0|false|no|off)$/i.test(process.env.GRPC_FAST_PATH?.trim() ?? "");

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const database = options.databaseUrl
    ? { url: options.databaseUrl, drop: async () => {} }
    : await createTestDatabase(options.databaseServerUrl ?? inject("databaseServerUrl"));
  const orm = await initORM({
    databaseUrl: database.url,
    poolSize: options.poolSize ?? 10,
    acquireTimeoutMs: options.acquireTimeoutMs,
  });
  await migrate(orm);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const logger = createLogger("info", sink);
  const health = new HealthMonitor(database.url, logger, options.healthIntervalMs ?? 500);
  await health.start();
  const server = createServer({
    orm,
    logger,
    health,
    corsOrigins: options.corsOrigins ?? [],
    tenantCacheSize: options.tenantCacheSize,
    tenantCacheListener: options.tenantCacheListener,
    auth: options.auth,
    watch: options.watch,
    eventHub: options.eventHub,
    eventRelay: options.eventRelay,
    console: options.console,
    tls: options.tls && { certFile: options.tls.certFile, keyFile: options.tls.keyFile },
    connectionPrefaceTimeoutMs: options.connectionPrefaceTimeoutMs,
    http2NoStreamTimeoutMs: options.http2NoStreamTimeoutMs,
    grpcFastPath: options.grpcFastPath ?? fastPathByDefault,
  });
  const address = await server.listen(0, "127.0.0.1");
  const baseUrl = `${options.tls ? "https" : "http"}://127.0.0.1:${address.port}`;
  const ca = options.tls?.ca;
  const sql = new pg.Pool({ connectionString: database.url, max: 4 });
  return {
    baseUrl,
    port: address.port,
    orm,
    health,
    sql,
    logs,
    databaseUrl: database.url,
    tenantCache: server.tenantCache,
    tenantLoader: server.tenantLoader,
    tenantInserter: server.tenantInserter,
    membershipInserter: server.membershipInserter,
    eventHub: server.eventHub,
    eventRelay: server.eventRelay,
    paramsSchemas: server.paramsSchemas,
    connect: createTenancyClients({ baseUrl, protocol: "connect", httpVersion: "1.1", useBinaryFormat: false, ca }),
    grpc: createTenancyClients({ baseUrl, protocol: "grpc", ca }),
    async close() {
      health.stop();
      await server.close(1_000);
      await sql.end();
      await orm.close();
      await database.drop();
      // INTERNAL is a bug: any test that provoked one fails the file.
      const internal = logs.filter((line) => line.msg === "internal error");
      if (internal.length > 0) {
        throw new Error(`the server logged ${internal.length} internal error(s): ${JSON.stringify(internal[0]).slice(0, 2000)}`);
      }
    },
  };
}
