import cluster, { type Worker } from "node:cluster";
import net from "node:net";
import type { Config } from "./config.js";
import { openDatabase } from "./database/embedded-postgres.js";
import { initORM, migrate } from "./database/orm.js";
import type { Logger } from "./logger.js";
import { databaseFailure, exitOnStartupFailure, listenFailure, redactedUrl, StartupCleanup } from "./startup.js";

/** Restarts faster than this many within a minute mean a crash loop: give up. */
const MAX_RESTARTS_PER_MINUTE = 5;

/**
 * WORKERS > 1: this process is the primary of a node:cluster. It does once
 * what must happen once (start the embedded PostgreSQL, apply migrations),
 * then forks WORKERS server processes that share the listening port (the
 * primary accepts connections and hands them out round-robin), each with its
 * own database pool, tenant cache and invalidation listener. It restarts a
 * worker that dies, and on SIGTERM/SIGINT passes the signal on, waits for
 * every worker to drain, then stops the database.
 */
export async function runPrimary(config: Config, log: Logger): Promise<void> {
  const cleanup = new StartupCleanup(log);
  let prepared;
  try {
    prepared = await prepareDatabase(config, log, cleanup);
    // Every worker would get the same listen error at once and say it: the
    // primary tries the address first, so that a taken port is said once.
    if (config.port !== 0) await tryListening(config.port, config.host);
    cleanup.done();
  } catch (error) {
    await cleanup.undo();
    return exitOnStartupFailure(error, cleanup);
  }
  const { databaseUrl, embedded } = prepared;

  const env = { ...process.env, DATABASE_URL: databaseUrl, MIGRATE_ON_START: "false" };
  let stopping = false;
  const restarts: number[] = [];
  const listening = new Set<number>();
  /** Workers that have listened once: one that exits before is a failed start (it said why), not a crash to restart. */
  const everListened = new Set<number>();
  let announced = false;

  const fork = (): Worker => cluster.fork(env);
  cluster.on("listening", (worker, address) => {
    listening.add(worker.id);
    everListened.add(worker.id);
    if (!announced && listening.size >= config.workers) {
      announced = true;
      const host = address.address ?? config.host;
      log.info(
        { address: `${host}:${address.port}`, workers: config.workers, database: embedded ? `embedded (${config.dataDir})` : "DATABASE_URL" },
        `tenancy listening on ${config.tls ? "https" : "http"}://${host}:${address.port} with ${config.workers} workers`,
      );
    }
  });
  cluster.on("exit", (worker, code, signal) => {
    listening.delete(worker.id);
    if (stopping) return;
    if (!everListened.has(worker.id)) {
      log.fatal({ pid: worker.process.pid, code, signal }, "a worker failed to start: stopping");
      void shutdown("a worker failed to start", 1);
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length > 0 && restarts[0]! < now - 60_000) restarts.shift();
    if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
      log.fatal({ code, signal }, "workers keep dying: stopping");
      void shutdown("crash loop", 1);
      return;
    }
    log.error({ pid: worker.process.pid, code, signal }, "worker died: starting another");
    setTimeout(() => {
      if (!stopping) fork();
    }, 500);
  });

  const shutdown = async (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason, graceMs: config.shutdownGraceMs }, "shutting down the workers");
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            const kill = setTimeout(() => worker.process.kill("SIGKILL"), config.shutdownGraceMs + 5_000);
            worker.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            worker.process.kill("SIGTERM");
          }),
      ),
    );
    if (embedded) await embedded.stop();
    log.info("stopped");
    process.exit(exitCode);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  // Each worker serves TLS itself: each reloads its certificate.
  process.on("SIGHUP", () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGHUP");
  });

  for (let i = 0; i < config.workers; i++) fork();
}

/** Once for all workers: the embedded PostgreSQL (if any) and the migrations. */
async function prepareDatabase(config: Config, log: Logger, cleanup: StartupCleanup) {
  const { url: databaseUrl, embedded } = await openDatabase(config, log);
  if (embedded) cleanup.add(() => embedded.stop());
  if (config.migrateOnStart) {
    const database = { embedded: embedded !== undefined, url: embedded ? embedded.url : redactedUrl(databaseUrl) };
    let orm;
    try {
      orm = await initORM({ databaseUrl, poolSize: 1, logger: (m) => log.debug(m) });
    } catch (error) {
      throw databaseFailure(error, "connect", database);
    }
    try {
      const applied = await migrate(orm);
      log.info({ applied }, applied.length ? "migrations applied" : "schema is up to date");
    } catch (error) {
      throw databaseFailure(error, "migrate", database);
    } finally {
      await orm.close();
    }
  }
  return { databaseUrl, embedded };
}

/** Binds and releases host:port; throws the listen failure as one line. */
async function tryListening(port: number, host: string): Promise<void> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once("error", reject);
      probe.listen({ port, host, exclusive: true }, resolve);
    });
  } catch (error) {
    throw listenFailure(error, port, host) ?? error;
  }
  await new Promise((resolve) => probe.close(resolve));
}
