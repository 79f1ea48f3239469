/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`) of the service: where the
 * busy time went, by component (HTTP/2, Connect, protobuf, ORM, driver,
 * logging, ...) and by function (self time). Used by `BENCH_PROFILE=1 npm run
 * bench`; also runnable on its own: `npx tsx bench/profile.ts <file.cpuprofile>`.
 */
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  file: string;
  /** Wall time covered by the profile, ms. */
  totalMs: number;
  /** Time not idle, ms. */
  busyMs: number;
  /** Share of busy time per component, highest first. */
  components: Array<{ component: string; ms: number; share: number }>;
  /** Functions with the most self time. */
  functions: Array<{ fn: string; component: string; ms: number; share: number }>;
}

const rules: Array<[RegExp, string]> = [
  [/node_modules\/@connectrpc\//, "Connect (RPC framework)"],
  [/node_modules\/@bufbuild\/protobuf\//, "protobuf-es (encode/decode)"],
  [/node_modules\/@mikro-orm\//, "MikroORM"],
  [/node_modules\/knex\//, "knex (query builder)"],
  [/node_modules\/(pg|pg-protocol|pg-pool|pg-types|postgres-[a-z]+|pgpass)\//, "pg driver"],
  [/node_modules\/(pino|sonic-boom|fast-redact|quick-format-unescaped|atomic-sleep|thread-stream|pino-std-serializers)\//, "logging (pino)"],
  [/node_modules\/(prom-client|tdigest|bintrees)\//, "metrics (prom-client)"],
  [/node_modules\/(tarn|generic-pool)\//, "connection pool (tarn)"],
  [/node_modules\/tsx\//, "tsx loader"],
  [/\/src\/cache\//, "service: tenant cache"],
  [/\/src\//, "service code"],
  [/\/gen\//, "generated code"],
  [/node:internal\/http2|node:http2/, "HTTP/2 (node)"],
  [/node:internal\/(streams|stream_base_commons|net)|node:net|node:stream/, "streams and sockets (node)"],
  [/node:internal\/(crypto)|node:crypto/, "crypto (node)"],
  [/node:/, "other node internals"],
  [/node_modules\//, "other dependencies"],
];

function componentOf(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (functionName === "(idle)") return "(idle)";
  if (functionName === "(garbage collector)") return "garbage collection";
  if (functionName === "(program)") return "V8/native (program)";
  if (url === "") return functionName.startsWith("(") ? "V8/native (program)" : "native (builtins, C++)";
  for (const [pattern, component] of rules) if (pattern.test(url)) return component;
  return "other";
}

export function summarizeProfile(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; attribute the next delta to it.
    const delta = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + delta);
  }
  const components = new Map<string, number>();
  const functions = new Map<string, { component: string; ms: number }>();
  let total = 0;
  let idle = 0;
  for (const [id, ms] of self) {
    const node = byId.get(id);
    if (!node) continue;
    total += ms;
    const component = componentOf(node);
    if (component === "(idle)") {
      idle += ms;
      continue;
    }
    components.set(component, (components.get(component) ?? 0) + ms);
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${url.replace(/^file:\/\/.*?\/(node_modules|src|gen)\//, "$1/")}:${lineNumber + 1}` : "native";
    const key = `${functionName || "(anonymous)"} ${where}`;
    const entry = functions.get(key) ?? { component, ms: 0 };
    entry.ms += ms;
    functions.set(key, entry);
  }
  const busy = total - idle;
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    file,
    totalMs: round(total),
    busyMs: round(busy),
    components: [...components]
      .map(([component, ms]) => ({ component, ms: round(ms), share: busy ? ms / busy : 0 }))
      .sort((a, b) => b.ms - a.ms),
    functions: [...functions]
      .map(([fn, { component, ms }]) => ({ fn, component, ms: round(ms), share: busy ? ms / busy : 0 }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, top),
  };
}

export function formatProfile(summary: ProfileSummary, requests?: number): string {
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)}%`;
  const perReq = (ms: number) => (requests ? `${((ms * 1000) / requests).toFixed(1).padStart(7)} µs/req` : "");
  const lines = [
    `profile ${summary.file}: ${summary.busyMs.toFixed(0)} ms busy of ${summary.totalMs.toFixed(0)} ms` +
      (requests ? `, ${requests} requests, ${((summary.busyMs * 1000) / requests).toFixed(1)} µs busy per request` : ""),
    "  by component (share of busy time):",
    ...summary.components.slice(0, 16).map((c) => `    ${pct(c.share)} ${perReq(c.ms)}  ${c.component}`),
    "  top functions by self time:",
    ...summary.functions.map((f) => `    ${pct(f.share)}  ${f.fn}  [${f.component}]`),
  ];
  return lines.join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: npx tsx bench/profile.ts <file.cpuprofile> [requests]\n");
    process.exit(2);
  }
  const requests = process.argv[3] ? Number(process.argv[3]) : undefined;
  process.stdout.write(formatProfile(summarizeProfile(file), requests) + "\n");
}
