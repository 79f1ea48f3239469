/**
 * The tenant directory's benchmark: a process of its own (forked by
 * bench/run.ts, answering over the IPC channel), started with
 * --expose-gc so that the heap it measures holds only what is still
 * reachable.
 *
 * - Memory: the heap the loaded directory holds, per tenant.
 * - Lookups: `byDomain` in a tight loop on this process's one JavaScript
 *   thread, counted per second of the CPU time it used (the machine's other
 *   processes do not take from it), in random order over the domains that
 *   pgbench selects from (the seeded set), and over every loaded tenant;
 *   with host names as clients send them (already normalized) and in
 *   another spelling (upper case and a trailing dot: normalized on every
 *   lookup).
 * - Propagation: CreateTenant at a fixed rate (open loop), each write's
 *   acknowledgement time against the time the directory applied its event
 *   (the event carries the sequence the response header named).
 */
import { performance } from "node:perf_hooks";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createTenancyClient } from "../clients/node/src/index.js";
import { newTenant, tenantDomain, uniqueSeq } from "./scenarios.js";

export interface DirectoryRunMessage {
  type: "run";
  baseUrl: string;
  /** Tenants 1..tenants exist (and are loaded). */
  tenants: number;
  /** The tenants pgbench selects from: 1..lookupTenants. */
  lookupTenants: number;
  lookupMs: number;
  writeRate: number;
  writeMs: number;
}

export interface DirectoryResult {
  type: "result";
  tenants: number;
  loadMs: number;
  heapBytes: number;
  bytesPerTenant: number;
  /** Over the pgbench set, as sent; normalized per lookup; over every loaded tenant. */
  lookupsPerSecond: number;
  lookupsPerSecondNormalizing: number;
  lookupsPerSecondAllTenants: number;
  writes: number;
  writeErrors: number;
  writeErrorSample?: string;
  propagationP50Ms: number;
  propagationP99Ms: number;
  propagationMaxMs: number;
  /** From the event's commit time (PostgreSQL's clock, same machine) to the directory applying it. */
  commitToAppliedP50Ms: number;
  commitToAppliedP99Ms: number;
  /** Events the directory applied before the write's response reached the writer. */
  appliedBeforeAck: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

function heapUsed(): number {
  if (!gc) throw new Error("run with --expose-gc");
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Lookups of `lookup` over `keys` (round robin) for about `ms`, per second of CPU time. */
function lookupRate(keys: string[], ms: number, lookup: (key: string) => unknown): number {
  let found = 0;
  let count = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  let elapsed = 0;
  // Clock reads every 64K lookups only: a read costs as much as a lookup.
  while (elapsed < ms) {
    for (let i = 0; i < 65_536; i++) {
      if (lookup(keys[(count + i) % keys.length]!) !== undefined) found++;
    }
    count += 65_536;
    elapsed = performance.now() - started;
  }
  if (found !== count) throw new Error(`${count - found} of ${count} lookups found nothing`);
  const used = process.cpuUsage(cpu);
  return count / ((used.user + used.system) / 1e6);
}

async function run(message: DirectoryRunMessage): Promise<DirectoryResult> {
  const client = createTenancyClient({ baseUrl: message.baseUrl });
  const loadStarted = performance.now();
  const directory = client.directory();
  await directory.ready();
  const loadMs = performance.now() - loadStarted;
  const tenants = directory.size;
  // The heap a second directory adds: the first one paid for compiled code
  // and the connection, which do not grow with the tenants.
  const before = heapUsed();
  const second = client.directory();
  await second.ready();
  const heapBytes = heapUsed() - before;
  second.close();

  // Shuffled, so that the loop does not walk the hash table in insertion order.
  const shuffled = (n: number) => {
    const domains = Array.from({ length: n }, (_, i) => tenantDomain(i + 1));
    for (let i = domains.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [domains[i], domains[j]] = [domains[j]!, domains[i]!];
    }
    return domains;
  };
  const domains = shuffled(message.lookupTenants);
  const spelled = domains.map((d) => `${d.toUpperCase()}.`);
  const byDomain = (d: string) => directory.byDomain(d);
  lookupRate(domains, Math.min(500, message.lookupMs), byDomain); // JIT warm-up
  const lookupsPerSecond = lookupRate(domains, message.lookupMs, byDomain);
  const lookupsPerSecondNormalizing = lookupRate(spelled, message.lookupMs, byDomain);
  const lookupsPerSecondAllTenants =
    message.tenants > message.lookupTenants ? lookupRate(shuffled(message.tenants), message.lookupMs, byDomain) : lookupsPerSecond;

  // Propagation while writes run at a fixed rate.
  const acked = new Map<bigint, number>();
  const applied = new Map<bigint, number>();
  const sinceCommit: number[] = [];
  directory.onChange((change) => {
    if (change.kind !== "event") return;
    const now = performance.now();
    applied.set(change.event.sequence, now);
    if (change.event.time) sinceCommit.push(performance.timeOrigin + now - timestampMs(change.event.time));
  });
  // Creates without a generated request_id share the service's coalesced
  // batches (one commit for many), as the load generator's do; one with a
  // request_id runs in a transaction of its own (README, Coalescing), which
  // this phase is not about.
  const writer = createTenancyClient({ baseUrl: message.baseUrl, retry: { creates: false } });
  let writes = 0;
  let writeErrors = 0;
  let writeErrorSample: string | undefined;
  const inFlight = new Set<Promise<void>>();
  const interval = 1000 / message.writeRate;
  const started = performance.now();
  for (let n = 0; ; n++) {
    const due = started + n * interval;
    if (due - started >= message.writeMs) break;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    let sequence: string | null = null;
    const call = writer.tenants
      .createTenant({ tenant: newTenant(uniqueSeq("dir", n)) }, { onHeader: (h) => (sequence = h.get("tenancy-event-sequence")) })
      .then(
        () => {
          writes++;
          if (sequence !== null) acked.set(BigInt(sequence), performance.now());
        },
        (error: unknown) => {
          writeErrors++;
          writeErrorSample ??= String(error);
        },
      )
      .finally(() => inFlight.delete(call));
    inFlight.add(call);
  }
  await Promise.all(inFlight);
  await directory.waitFor(writer.lastEventSequence, { timeoutMs: 30_000 });
  const delays: number[] = [];
  let appliedBeforeAck = 0;
  for (const [sequence, ackedAt] of acked) {
    const at = applied.get(sequence);
    if (at === undefined) throw new Error(`the directory never applied sequence ${sequence}`);
    if (at < ackedAt) appliedBeforeAck++;
    delays.push(Math.max(0, at - ackedAt));
  }
  delays.sort((a, b) => a - b);
  sinceCommit.sort((a, b) => a - b);
  directory.close();
  return {
    type: "result",
    tenants,
    loadMs,
    heapBytes,
    bytesPerTenant: heapBytes / tenants,
    lookupsPerSecond,
    lookupsPerSecondNormalizing,
    lookupsPerSecondAllTenants,
    writes,
    writeErrors,
    ...(writeErrorSample ? { writeErrorSample } : {}),
    propagationP50Ms: percentile(delays, 50),
    propagationP99Ms: percentile(delays, 99),
    propagationMaxMs: delays.at(-1) ?? NaN,
    commitToAppliedP50Ms: percentile(sinceCommit, 50),
    commitToAppliedP99Ms: percentile(sinceCommit, 99),
    appliedBeforeAck,
  };
}

process.on("message", (message: DirectoryRunMessage | { type: "exit" }) => {
  if (message.type === "exit") process.exit(0);
  run(message).then(
    (result) => process.send!(result),
    (error: unknown) => process.send!({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});
