import cluster from "node:cluster";
import { ConfigError, loadConfig } from "./config.js";
import { runPrimary } from "./cluster.js";
import { openDatabase } from "./database/embedded-postgres.js";
import { initORM, migrate } from "./database/orm.js";
import { createLogger } from "./logger.js";
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

  const { url: databaseUrl, embedded } = await openDatabase(config, log);

  const orm = await initORM({
    databaseUrl,
    poolSize: config.databasePoolSize,
    acquireTimeoutMs: config.databaseAcquireTimeoutMs,
    logger: (m) => log.debug(m),
  });
  if (config.migrateOnStart) {
    const applied = await migrate(orm);
    log.info({ applied }, applied.length ? "migrations applied" : "schema is up to date");
  }

  const health = new HealthMonitor(databaseUrl, log, config.healthIntervalMs);
  await health.start();
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
  });
  const maintenance = startMaintenance(orm, log, {
    intervalMs: config.maintenanceIntervalMs,
    requestIdRetentionMs: config.requestIdRetentionMs,
    eventRetentionMs: config.eventRetentionMs,
    keepUnrelayedEvents: config.eventRelay !== undefined,
  });
  const address = await server.listen(config.port, config.host);
  log.info(
    { address: `${address.address}:${address.port}`, database: embedded ? `embedded (${config.dataDir})` : redact(databaseUrl) },
    `tenancy listening on http://${address.address}:${address.port}`,
  );
  if (config.console) log.info(`admin console at http://${address.address}:${address.port}/console/`);
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
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

main().catch((error) => {
  process.stderr.write(`tenancy failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
