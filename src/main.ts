import cluster from "node:cluster";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { runPrimary } from "./cluster.js";
import { openDatabase } from "./database/embedded-postgres.js";
import { initORM, migrate } from "./database/orm.js";
import { createLogger, type Logger } from "./logger.js";
import { databaseFailure, exitOnStartupFailure, listenFailure, redactedUrl, StartupCleanup } from "./startup.js";
import { createServer } from "./server.js";
import { HealthMonitor } from "./health/health.monitor.js";
import { startMaintenance } from "./jobs/maintenance.job.js";

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  if (config.workers > 1 && cluster.isPrimary) {
    // The primary forks the servers; each worker runs the rest of main().
    await runPrimary(config, log);
    return;
  }

  const cleanup = new StartupCleanup(log);
  let started;
  try {
    started = await start(config, log, cleanup);
    cleanup.done();
  } catch (error) {
    await cleanup.undo();
    return exitOnStartupFailure(error, cleanup);
  }
  const { embedded, orm, health, server, maintenance } = started;
  if (config.auth.mode === "none") {
    log.warn("AUTH_MODE=none: every caller is a platform administrator (development only, loopback only)");
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down");
    health.stop(); // Watch streams see NOT_SERVING, load balancers drain
    await server.close(config.shutdownGraceMs);
    await maintenance.stop();
    await orm.close();
    if (embedded) await embedded.stop();
    log.info("stopped");
    process.exit(0);
  };
  // A close that fails is logged and ends the process with an error code,
  // instead of leaving it half stopped with an unhandled rejection.
  const onSignal = (signal: string) =>
    shutdown(signal).catch((error: unknown) => {
      log.error({ err: error, signal }, "shutdown failed");
      process.exit(1);
    });
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // A renewed certificate needs no restart: new connections get it.
  process.on("SIGHUP", () => {
    if (!server.secure) return log.info("SIGHUP: no TLS certificate to reload");
    try {
      server.reloadTls();
      log.info({ cert: config.tls?.certFile }, "TLS certificate reloaded");
    } catch (error) {
      log.error({ err: error }, "TLS certificate not reloaded: the current one stays in use");
    }
  });
}

/** Everything the server needs, each step registered with `cleanup` so that a failure after it undoes it. */
async function start(config: Config, log: Logger, cleanup: StartupCleanup) {
  const { url: databaseUrl, embedded } = await openDatabase(config, log);
  if (embedded) cleanup.add(() => embedded.stop());
  const database = { embedded: embedded !== undefined, url: redactedUrl(databaseUrl) };

  let orm;
  try {
    orm = await initORM({
      databaseUrl,
      poolSize: config.databasePoolSize,
      acquireTimeoutMs: config.databaseAcquireTimeoutMs,
      logger: (m) => log.debug(m),
    });
  } catch (error) {
    throw databaseFailure(error, "connect", database);
  }
  cleanup.add(() => orm.close());
  if (config.migrateOnStart) {
    let applied;
    try {
      applied = await migrate(orm);
    } catch (error) {
      throw databaseFailure(error, "migrate", database);
    }
    log.info({ applied }, applied.length ? "migrations applied" : "schema is up to date");
  }

  const health = new HealthMonitor(databaseUrl, log, config.healthIntervalMs);
  await health.start();
  cleanup.add(() => health.stop());
  const server = createServer({
    orm,
    logger: log,
    health,
    corsOrigins: config.corsOrigins,
    readMaxBytes: config.maxMessageBytes,
    auth: config.auth,
    tenantRules: { retentionMs: config.tenantRetentionMs },
    tenantCacheSize: config.tenantCacheSize,
    watch: { progressIntervalMs: config.watchProgressIntervalMs, maxBacklog: config.watchMaxBacklog },
    eventRelay: config.eventRelay,
    console: config.console,
    tls: config.tls,
    connectionPrefaceTimeoutMs: config.connectionPrefaceTimeoutMs,
    http2NoStreamTimeoutMs: config.http2NoStreamTimeoutMs,
    grpcFastPath: config.grpcFastPath,
  });
  cleanup.add(() => server.close(0));
  const maintenance = startMaintenance(orm, log, {
    intervalMs: config.maintenanceIntervalMs,
    requestIdRetentionMs: config.requestIdRetentionMs,
    eventRetentionMs: config.eventRetentionMs,
    keepUnrelayedEvents: config.eventRelay !== undefined,
  });
  cleanup.add(() => maintenance.stop());
  let address;
  try {
    address = await server.listen(config.port, config.host);
  } catch (error) {
    throw listenFailure(error, config.port, config.host) ?? error;
  }
  log.info(
    { address: `${address.address}:${address.port}`, database: embedded ? `embedded (${embedded.directory})` : database.url },
    `tenancy listening on ${server.secure ? "https" : "http"}://${address.address}:${address.port}`,
  );
  if (config.console) log.info(`admin console at ${server.secure ? "https" : "http"}://${address.address}:${address.port}/console/`);
  return { embedded, orm, health, server, maintenance };
}

main().catch((error) => exitOnStartupFailure(error));
