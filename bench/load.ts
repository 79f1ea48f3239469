/**
 * The load generator: a process of its own (forked by bench/run.ts, talking
 * over the IPC channel), so that the service's CPU figures are the
 * service's alone. It drives one operation (or the mixed workload) either
 * as RPCs over gRPC on HTTP/2 (`connections` sessions, `streams` concurrent
 * calls on each) or, for the baseline, as the same SQL through the `pg`
 * driver with the same number of concurrent callers on a pool of
 * `poolSize` connections, and measures throughput and latency.
 *
 * Closed loop (each caller sends its next request when the previous one
 * answered) for the maximum rate; open loop at a fixed rate (latency counted
 * from when a request was due, so that a stall is not hidden) for latency
 * at a given load.
 */
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  GetTenantRequestSchema,
  ListTenantsRequestSchema,
  LookupTenantRequestSchema,
  TenantSchema,
  TenantService,
  UpdateTenantRequestSchema,
} from "../gen/tenancy/v1/tenant_pb.js";
import { ListMembershipsRequestSchema, MembershipService } from "../gen/tenancy/v1/membership_pb.js";
import { encode, frame, RawGrpcClient, unframe } from "./grpc-client.js";
import {
  baselineSql,
  LIST_FILTER,
  MIXED,
  newTenant,
  PROGRAM_BINDING,
  programParams,
  tenantDomain,
  tenantId,
  tenantParams,
  userId,
  users,
  uniqueSeq,
  type DataSet,
  type Op,
} from "./scenarios.js";

export interface SetupMessage {
  type: "setup";
  baseUrl?: string;
  databaseUrl: string;
  data: DataSet;
  connections: number;
  streams: number;
  poolSize: number;
  /** `raw` (node:http2, pre-encoded requests) or `connect` (the Connect client). */
  client: "raw" | "connect";
  /** The deadline sent with every RPC (`grpc-timeout`), as a typed client does; 0: none. */
  deadlineMs: number;
}

export interface RunMessage {
  type: "run";
  id: number;
  op: Op | "mixed";
  mode: "rpc" | "sql";
  durationMs: number;
  warmupMs: number;
  /** Requests per second for an open-loop run; unset for closed loop. */
  rate?: number;
}

/** Reads every seeded tenant once by id or domain, as a warm cache would have. */
export interface PrimeMessage {
  type: "prime";
  id: number;
  op: "get" | "lookup";
  /** Send each key on every connection (several workers, each with its own cache). */
  everyConnection: boolean;
}

export interface RunResult {
  type: "result";
  id: number;
  requests: number;
  errors: number;
  errorSample?: string;
  elapsedMs: number;
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Load generator CPU milliseconds per 1,000 requests. */
  loadgenCpuMsPer1k: number;
}

type Ops = Record<Op, (worker: number) => Promise<unknown>>;

let setup: SetupMessage | undefined;
let pool: pg.Pool | undefined;
let sessions: Http2SessionManager[] = [];
let clients: Array<{ tenants: Client<typeof TenantService>; memberships: Client<typeof MembershipService> }> = [];
let raw: RawGrpcClient[] = [];
/** Pre-encoded request bodies for the raw client. */
let bodies: { get: Buffer[]; lookup: Buffer[]; listMemberships: Buffer[]; list: Buffer } | undefined;
let ids: string[] = [];
let domains: string[] = [];
let userIds: string[] = [];
let counter = 0;
const runTag = randomUUID().slice(0, 6);

const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)]!;

/**
 * CreateTenant's params, in 64 variants encoded once: the load generator
 * shares the CPUs with the service, so it should not spend them turning the
 * same JSON into a Struct for every request. The baseline inserts the same
 * variants (as JSON text, also prepared once).
 */
const PARAM_VARIANTS = 64;
const paramsJson = Array.from({ length: PARAM_VARIANTS }, (_, i) => JSON.stringify(tenantParams(i)));
// Tenant.params (field 4, a Struct) as encoded inside a Tenant message.
const paramsField = Array.from({ length: PARAM_VARIANTS }, (_, i) =>
  Buffer.from(toBinary(TenantSchema, create(TenantSchema, { params: tenantParams(i) }))),
);

const programJson = Array.from({ length: PARAM_VARIANTS }, (_, i) => JSON.stringify(programParams(i)));
const programField = Array.from({ length: PARAM_VARIANTS }, (_, i) =>
  Buffer.from(toBinary(TenantSchema, create(TenantSchema, { params: programParams(i) }))),
);
// Tenant.params_schema (field 11).
const bindingField = Buffer.from(toBinary(TenantSchema, create(TenantSchema, { paramsSchema: PROGRAM_BINDING })));

function lengthDelimited(field: number, bytes: Buffer): Buffer[] {
  const header: number[] = [(field << 3) | 2];
  for (let n = bytes.length; ; n >>>= 7) {
    if (n < 0x80) {
      header.push(n);
      break;
    }
    header.push((n & 0x7f) | 0x80);
  }
  return [Buffer.from(header), bytes];
}

/** A framed CreateMembershipRequest { membership { tenant_id, user_id } }, encoded by hand like CreateTenant's. */
function createMembershipBody(tenant: string, user: string): Buffer {
  const membership = Buffer.concat([...lengthDelimited(2, Buffer.from(tenant)), ...lengthDelimited(3, Buffer.from(user))]);
  return frame(Buffer.concat(lengthDelimited(1, membership)));
}

/**
 * A framed CreateTenantRequest { tenant { name, domain, params[, params_schema] } }
 * built from pre-encoded params: the seed's, or the learning program's with
 * or without its schema.
 */
function createTenantBody(seq: string, variant: number, kind: "seed" | "program" | "bound" = "seed"): Buffer {
  const t = newTenant(seq);
  const tenant = Buffer.concat([
    ...lengthDelimited(2, Buffer.from(t.name)),
    ...lengthDelimited(3, Buffer.from(t.domain)),
    (kind === "seed" ? paramsField : programField)[variant % PARAM_VARIANTS]!,
    ...(kind === "bound" ? [bindingField] : []),
  ]);
  return frame(Buffer.concat(lengthDelimited(1, tenant)));
}

function rpcOps(): Ops {
  const c = (w: number) => clients[w % clients.length]!;
  return {
    get: (w) => c(w).tenants.getTenant({ id: pick(ids) }),
    lookup: (w) => c(w).tenants.lookupTenant({ key: { case: "domain", value: pick(domains) } }),
    list: (w) => c(w).tenants.listTenants({ pageSize: 50, filter: LIST_FILTER }),
    listMemberships: (w) => c(w).memberships.listMemberships({ userId: pick(userIds) }),
    createTenant: (w) => c(w).tenants.createTenant({ tenant: newTenant(uniqueSeq(runTag, counter++)) }),
    createTenantProgram: (w) => c(w).tenants.createTenant({ tenant: { ...newTenant(uniqueSeq(runTag, counter)), params: programParams(counter++) } }),
    createTenantBound: (w) =>
      c(w).tenants.createTenant({ tenant: { ...newTenant(uniqueSeq(runTag, counter)), params: programParams(counter++), paramsSchema: PROGRAM_BINDING } }),
    createMembership: (w) => c(w).memberships.createMembership({ membership: { tenantId: pick(ids), userId: randomUUID() } }),
    update: (w) =>
      c(w).tenants.updateTenant({ tenant: { id: pick(ids), params: tenantParams(counter++) }, updateMask: { paths: ["params"] } }),
  };
}

const tenantPath = (method: string) => `/${TenantService.typeName}/${method}`;
const membershipPath = (method: string) => `/${MembershipService.typeName}/${method}`;
const index = (n: number) => Math.floor(Math.random() * n);

function rawOps(): Ops {
  const b = bodies!;
  const c = (w: number) => raw[w % raw.length]!;
  return {
    get: (w) => c(w).call(tenantPath("GetTenant"), b.get[index(b.get.length)]!),
    lookup: (w) => c(w).call(tenantPath("LookupTenant"), b.lookup[index(b.lookup.length)]!),
    list: (w) => c(w).call(tenantPath("ListTenants"), b.list),
    listMemberships: (w) => c(w).call(membershipPath("ListMemberships"), b.listMemberships[index(b.listMemberships.length)]!),
    createTenant: (w) => {
      const n = counter++;
      return c(w).call(tenantPath("CreateTenant"), createTenantBody(uniqueSeq(runTag, n), n));
    },
    createTenantProgram: (w) => {
      const n = counter++;
      return c(w).call(tenantPath("CreateTenant"), createTenantBody(uniqueSeq(runTag, n), n, "program"));
    },
    createTenantBound: (w) => {
      const n = counter++;
      return c(w).call(tenantPath("CreateTenant"), createTenantBody(uniqueSeq(runTag, n), n, "bound"));
    },
    createMembership: (w) => c(w).call(membershipPath("CreateMembership"), createMembershipBody(pick(ids), randomUUID())),
    update: (w) =>
      c(w).call(
        tenantPath("UpdateTenant"),
        encode(UpdateTenantRequestSchema, { tenant: { id: pick(ids), params: tenantParams(counter++) }, updateMask: { paths: ["params"] } }),
      ),
  };
}

function sqlOps(db: pg.Pool): Ops {
  const planPath = [["plan"], ["plan"], "pro"];
  const insertProgram = () => {
    const n = counter++;
    const t = newTenant(uniqueSeq(runTag, n));
    const now = new Date();
    return db.query(baselineSql.createTenant[0], [randomUUID(), t.name, t.domain, programJson[n % PARAM_VARIANTS], now, now, "ACTIVE", null, null]);
  };
  return {
    get: () => db.query(baselineSql.get[0], [pick(ids)]),
    lookup: () => db.query(baselineSql.lookup[0], [pick(domains)]),
    list: () => Promise.all([db.query(baselineSql.list[0], planPath), db.query(baselineSql.list[1], planPath)]),
    listMemberships: () => {
      const user = pick(userIds);
      return Promise.all([db.query(baselineSql.listMemberships[0], [user]), db.query(baselineSql.listMemberships[1], [user])]);
    },
    createTenant: () => {
      const n = counter++;
      const t = newTenant(uniqueSeq(runTag, n));
      const now = new Date();
      return db.query(baselineSql.createTenant[0], [randomUUID(), t.name, t.domain, paramsJson[n % PARAM_VARIANTS], now, now, "ACTIVE", null, null]);
    },
    createTenantProgram: () => insertProgram(),
    createTenantBound: () => insertProgram(),
    createMembership: () => {
      const now = new Date();
      return db.query(baselineSql.createMembership[0], [randomUUID(), pick(ids), randomUUID(), null, null, now, now, "{}"]);
    },
    update: async () => {
      const client = await db.connect();
      try {
        await client.query("BEGIN");
        const { rows } = await client.query<{ tenant_id: string; version: number }>(baselineSql.update[0], [pick(ids)]);
        const row = rows[0]!;
        await client.query(baselineSql.update[1], [JSON.stringify(tenantParams(counter++)), new Date(), row.tenant_id, row.version]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      } finally {
        client.release();
      }
    },
  };
}

function mixed(ops: Ops): (worker: number) => Promise<unknown> {
  const total = MIXED.reduce((sum, [, weight]) => sum + weight, 0);
  return (worker) => {
    let r = Math.random() * total;
    for (const [op, weight] of MIXED) {
      r -= weight;
      if (r < 0) return ops[op](worker);
    }
    return ops[MIXED[0]![0]](worker);
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function run(message: RunMessage): Promise<RunResult> {
  const s = setup!;
  const ops = message.mode === "sql" ? sqlOps(pool!) : s.client === "raw" ? rawOps() : rpcOps();
  const op = message.op === "mixed" ? mixed(ops) : ops[message.op];
  const latencies: number[] = [];
  let recording = false;
  let stop = false;
  let errors = 0;
  let errorSample: string | undefined;
  const onError = (error: unknown) => {
    if (!recording) return;
    errors += 1;
    errorSample ??= error instanceof Error ? error.message : String(error);
  };
  let cpu = process.cpuUsage();
  let started = 0;
  // The orchestrator samples the service's CPU on these marks.
  const mark = (phase: "start" | "stop") => process.send?.({ type: "mark", phase });
  const begin = () => {
    mark("start");
    recording = true;
    cpu = process.cpuUsage();
    started = performance.now();
  };
  const end = () => {
    recording = false;
    mark("stop");
  };

  if (message.rate === undefined) {
    const workers = s.connections * s.streams;
    const loops = Array.from({ length: workers }, async (_, w) => {
      while (!stop) {
        const t0 = performance.now();
        try {
          await op(w);
          if (recording) latencies.push(performance.now() - t0);
        } catch (error) {
          onError(error);
        }
      }
    });
    await sleep(message.warmupMs);
    begin();
    await sleep(message.durationMs);
    end();
    const elapsedMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    stop = true;
    await Promise.all(loops);
    return summarize(message.id, latencies, errors, errorSample, elapsedMs, used);
  }

  // Open loop: requests are due at a fixed rate, whatever the answers do.
  const rate = message.rate;
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  let dropped = 0;
  const t0 = performance.now();
  const totalMs = message.warmupMs + message.durationMs;
  const warmupEnd = t0 + message.warmupMs;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (!recording && now >= warmupEnd) begin();
      const due = Math.floor(((Math.min(now, t0 + totalMs) - t0) * rate) / 1000);
      while (sent < due) {
        const scheduled = t0 + (sent * 1000) / rate;
        const w = sent;
        sent += 1;
        if (inFlight.size >= 20_000) {
          dropped += 1; // the service cannot keep up: counted as errors
          if (recording) onError(new Error("more than 20,000 requests in flight"));
          continue;
        }
        const record = recording && scheduled >= warmupEnd;
        const p: Promise<void> = op(w).then(
          () => {
            if (record) latencies.push(performance.now() - scheduled);
          },
          (error: unknown) => {
            if (record) onError(error);
          },
        );
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      if (now - t0 >= totalMs) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  end();
  const elapsedMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  await Promise.all(inFlight);
  void dropped;
  return summarize(message.id, latencies, errors, errorSample, elapsedMs, used);
}

function summarize(
  id: number,
  latencies: number[],
  errors: number,
  errorSample: string | undefined,
  elapsedMs: number,
  cpu: NodeJS.CpuUsage,
): RunResult {
  const sorted = Float64Array.from(latencies).sort();
  const requests = sorted.length;
  return {
    type: "result",
    id,
    requests,
    errors,
    ...(errorSample ? { errorSample } : {}),
    elapsedMs,
    rps: (requests * 1000) / elapsedMs,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    loadgenCpuMsPer1k: requests ? ((cpu.user + cpu.system) / 1000 / requests) * 1000 : NaN,
  };
}

async function configure(message: SetupMessage): Promise<void> {
  for (const session of sessions) session.abort();
  for (const client of raw) client.close();
  sessions = [];
  clients = [];
  raw = [];
  if (!pool || setup?.databaseUrl !== message.databaseUrl || setup.poolSize !== message.poolSize) {
    await pool?.end();
    pool = new pg.Pool({ connectionString: message.databaseUrl, max: message.poolSize });
  }
  setup = message;
  if (message.baseUrl && message.client === "raw") {
    for (let i = 0; i < message.connections; i++) raw.push(new RawGrpcClient(message.baseUrl, message.deadlineMs || undefined));
  } else if (message.baseUrl) {
    for (let i = 0; i < message.connections; i++) {
      const session = new Http2SessionManager(message.baseUrl);
      sessions.push(session);
      const transport = createGrpcTransport({ baseUrl: message.baseUrl, sessionManager: session, defaultTimeoutMs: message.deadlineMs || undefined });
      clients.push({ tenants: createClient(TenantService, transport), memberships: createClient(MembershipService, transport) });
    }
  }
  const n = message.data.tenants;
  ids = Array.from({ length: n }, (_, i) => tenantId(i + 1));
  domains = Array.from({ length: n }, (_, i) => tenantDomain(i + 1));
  userIds = Array.from({ length: users(message.data) }, (_, u) => userId(u));
  bodies = {
    get: ids.map((id) => encode(GetTenantRequestSchema, { id })),
    lookup: domains.map((domain) => encode(LookupTenantRequestSchema, { key: { case: "domain", value: domain } })),
    listMemberships: userIds.map((user) => encode(ListMembershipsRequestSchema, { userId: user })),
    list: encode(ListTenantsRequestSchema, { pageSize: 50, filter: LIST_FILTER }),
  };
  if (raw.length > 0) {
    // The raw client does not decode answers: check once that they are right.
    const tenant = fromBinary(TenantSchema, unframe(await raw[0]!.call(tenantPath("GetTenant"), bodies.get[0]!)));
    if (tenant.id !== ids[0] || tenant.domain !== domains[0]) throw new Error(`GetTenant answered ${tenant.id} ${tenant.domain}, expected ${ids[0]}`);
  }
}

async function prime(message: PrimeMessage): Promise<{ type: "result"; id: number; requests: number }> {
  const s = setup!;
  const keys = message.op === "get" ? ids.length : domains.length;
  const connections = s.client === "raw" ? raw.length : clients.length;
  const count = message.everyConnection ? keys * connections : keys;
  let next = 0;
  const one = (i: number, w: number): Promise<unknown> => {
    if (s.client === "raw") {
      const b = bodies!;
      return message.op === "get"
        ? raw[w % raw.length]!.call(tenantPath("GetTenant"), b.get[i]!)
        : raw[w % raw.length]!.call(tenantPath("LookupTenant"), b.lookup[i]!);
    }
    const c = clients[w % clients.length]!;
    return message.op === "get" ? c.tenants.getTenant({ id: ids[i]! }) : c.tenants.lookupTenant({ key: { case: "domain", value: domains[i]! } });
  };
  await Promise.all(
    Array.from({ length: s.connections * s.streams }, async (_, w) => {
      while (next < count) {
        const n = next++;
        // Key n % keys on connection floor(n / keys) when every connection gets every key.
        await one(n % keys, message.everyConnection ? Math.floor(n / keys) : w);
      }
    }),
  );
  return { type: "result", id: message.id, requests: count };
}

process.on("message", (message: SetupMessage | RunMessage | PrimeMessage | { type: "exit" }) => {
  const reply = (value: unknown) => process.send!(value);
  if (message.type === "setup") {
    configure(message).then(
      () => reply({ type: "ready" }),
      (error: unknown) => reply({ type: "error", message: String(error) }),
    );
  } else if (message.type === "prime") {
    prime(message).then(reply, (error: unknown) => reply({ type: "error", id: message.id, message: String(error) }));
  } else if (message.type === "run") {
    run(message).then(reply, (error: unknown) => reply({ type: "error", id: message.id, message: String(error) }));
  } else if (message.type === "exit") {
    for (const session of sessions) session.abort();
    for (const client of raw) client.close();
    void pool?.end().finally(() => process.exit(0));
  }
});
