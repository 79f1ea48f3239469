import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { MikroORM } from "@mikro-orm/postgresql";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { procedureOf } from "../rpc/procedure.js";

/** The pool behind the ORM (tarn, via knex), read for the pool gauges. */
interface PoolStats {
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  max: number;
}

/**
 * Prometheus metrics of one server: RPCs by procedure and code, their
 * latency, RPCs in flight, and the database pool. A registry per server
 * (not the global one), so that several servers in one process stay apart.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: Counter<"procedure" | "code">;
  private readonly duration: Histogram<"procedure" | "code">;
  private readonly inFlight: Gauge<"procedure">;

  constructor(orm: MikroORM) {
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: "tenancy_rpc_requests_total",
      help: "RPCs handled, by procedure and status code",
      labelNames: ["procedure", "code"],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: "tenancy_rpc_duration_seconds",
      help: "RPC latency in seconds, by procedure and status code",
      labelNames: ["procedure", "code"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.inFlight = new Gauge({
      name: "tenancy_rpc_in_flight",
      help: "RPCs being handled now",
      labelNames: ["procedure"],
      registers: [this.registry],
    });
    const pool = () => (orm.em.getKnex().client as { pool?: PoolStats }).pool;
    const poolGauge = (name: string, help: string, read: (p: PoolStats) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const p = pool();
          this.set(p ? read(p) : 0);
        },
      });
    poolGauge("tenancy_db_pool_connections_used", "database connections in use", (p) => p.numUsed());
    poolGauge("tenancy_db_pool_connections_idle", "idle database connections", (p) => p.numFree());
    poolGauge("tenancy_db_pool_pending_acquires", "requests waiting for a database connection", (p) => p.numPendingAcquires());
    poolGauge("tenancy_db_pool_connections_max", "maximum database connections", (p) => p.max);
  }

  /**
   * How well concurrent requests share statements (see src/database/batcher.ts):
   * statements sent and requests they served, by kind. Requests per statement
   * near 1 means little concurrency; high means coalescing is doing its job.
   */
  coalescing(sources: Record<string, () => { batches: number; items: number; abandoned: number }>): void {
    const counter = (name: string, help: string, field: "batches" | "items" | "abandoned") => {
      const reported = new Map<string, number>();
      return new Counter({
        name,
        help,
        labelNames: ["kind"],
        registers: [this.registry],
        collect() {
          for (const [kind, read] of Object.entries(sources)) {
            const now = read()[field];
            this.inc({ kind }, now - (reported.get(kind) ?? 0));
            reported.set(kind, now);
          }
        },
      });
    };
    counter("tenancy_coalesced_statements_total", "statements sent for coalesced requests, by kind", "batches");
    counter("tenancy_coalesced_requests_total", "requests served by coalesced statements, by kind", "items");
    counter(
      "tenancy_coalesced_abandoned_total",
      "requests left out of a coalesced statement because their caller had given up (deadline passed, cancelled), by kind",
      "abandoned",
    );
  }

  interceptor(): Interceptor {
    // The labelled series of each procedure and code, looked up once: on
    // every request's path, prom-client would otherwise hash the labels of
    // three metrics per call.
    type Series = { inFlight: ReturnType<Gauge<"procedure">["labels"]>; byCode: Map<string, Outcome> };
    type Outcome = { duration: ReturnType<Histogram<"procedure" | "code">["labels"]>; requests: ReturnType<Counter<"procedure" | "code">["labels"]> };
    const series = new Map<string, Series>();
    const seriesOf = (procedure: string): Series => {
      let found = series.get(procedure);
      if (!found) series.set(procedure, (found = { inFlight: this.inFlight.labels({ procedure }), byCode: new Map() }));
      return found;
    };
    const outcomeOf = (procedure: string, of: Series, code: string): Outcome => {
      let found = of.byCode.get(code);
      if (!found) {
        const labels = { procedure, code };
        of.byCode.set(code, (found = { duration: this.duration.labels(labels), requests: this.requests.labels(labels) }));
      }
      return found;
    };
    return (next) => async (req) => {
      const procedure = procedureOf(req.method);
      const of = seriesOf(procedure);
      const started = performance.now();
      of.inFlight.inc();
      let code = "OK";
      try {
        return await next(req);
      } catch (error) {
        code = Code[error instanceof ConnectError ? error.code : Code.Unknown];
        throw error;
      } finally {
        of.inFlight.dec();
        const outcome = outcomeOf(procedure, of, code);
        outcome.duration.observe((performance.now() - started) / 1000);
        outcome.requests.inc();
      }
    };
  }
}
