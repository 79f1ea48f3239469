import { EventEmitter } from "node:events";
import pg from "pg";
import type { Logger } from "../logger.js";

export type ServingState = "SERVING" | "NOT_SERVING";

/**
 * Knows whether the database answers, by asking it on a fixed interval over
 * a connection of its own (so a busy pool never looks like an outage), and
 * tells listeners when that changes.
 */
export class HealthMonitor extends EventEmitter<{ change: [ServingState]; stopped: [] }> {
  private current: ServingState = "NOT_SERVING";
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly log: Logger,
    private readonly intervalMs = 2_000,
  ) {
    super();
    this.setMaxListeners(0);
  }

  get state(): ServingState {
    return this.current;
  }

  /** Checks once right away, then on every interval. */
  async start(): Promise<void> {
    await this.check();
    this.schedule();
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Reports NOT_SERVING for good; Watch streams then end, so shutdown need not wait for them. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.set("NOT_SERVING");
    this.emit("stopped");
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(async () => {
      await this.check();
      this.schedule();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One probe; exposed so that tests and callers can force a fresh answer. */
  async check(): Promise<ServingState> {
    // A probe may take up to a second even when probes come faster: a busy
    // machine's slow answer is not an outage (a stopped database refuses at once).
    const timeoutMs = Math.min(Math.max(this.intervalMs, 1_000), 2_000);
    const client = new pg.Client({
      connectionString: this.databaseUrl,
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.query("SELECT 1");
      this.set("SERVING");
    } catch (error) {
      if (this.current === "SERVING") this.log.warn({ err: error }, "database unreachable: NOT_SERVING");
      this.set("NOT_SERVING");
    } finally {
      await client.end().catch(() => {});
    }
    return this.current;
  }

  private set(state: ServingState): void {
    if (state === this.current || (this.stopped && state === "SERVING")) return;
    this.current = state;
    this.log.info({ state }, "health changed");
    this.emit("change", state);
  }
}
