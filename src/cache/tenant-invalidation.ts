import pg from "pg";
import type { Logger } from "../logger.js";
import type { TenantCache } from "./tenant-cache.js";

/**
 * The channel on which every change of a tenant row is announced, by the
 * trigger that migration Migration20261127050000_tenant_notify puts on
 * "Tenants" (AFTER UPDATE OR DELETE, payload: the tenant id; AFTER TRUNCATE,
 * payload `*`). A trigger runs in the writing transaction, so the
 * notification is sent exactly when the change commits, whatever wrote it:
 * an RPC, the purge job, another instance, or someone with psql.
 */
export const TENANT_CHANGED_CHANNEL = "tenancy_tenant_changed";

export interface InvalidationListenerOptions {
  databaseUrl: string;
  cache: TenantCache<unknown>;
  log: Logger;
  /** How often the connection is proven alive with a query. */
  heartbeatMs?: number;
  /** How long a heartbeat may take before the connection is given up. */
  heartbeatTimeoutMs?: number;
  /** First and largest delay between reconnection attempts. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
}

export type ListenerState = "connecting" | "listening" | "stopped";

/**
 * Keeps one dedicated connection LISTENing on TENANT_CHANGED_CHANNEL and
 * applies every notification to the cache. While it is not listening (not
 * yet connected, dropped, heartbeat overdue), the cache is empty and
 * bypassed: a notification missed then would otherwise leave a stale entry
 * behind. It reconnects by itself, with exponential backoff.
 */
export class TenantInvalidationListener {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private waiters: Array<() => void> = [];
  private current: ListenerState = "connecting";
  /** The PostgreSQL backend serving the LISTEN connection, while listening. */
  backendPid: number | undefined;
  /** Notifications received since start. */
  received = 0;

  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;

  constructor(private readonly options: InvalidationListenerOptions) {
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3_000;
    this.reconnectMinMs = options.reconnectMinMs ?? 100;
    this.reconnectMaxMs = options.reconnectMaxMs ?? 5_000;
  }

  get state(): ListenerState {
    return this.current;
  }

  /** Starts connecting in the background; the cache is bypassed until LISTEN is in place. */
  start(): void {
    this.options.cache.setLive(false);
    void this.connect();
  }

  /** Resolves once the listener is (again) listening. */
  listening(): Promise<void> {
    if (this.current === "listening") return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.current = "stopped";
    clearTimeout(this.timer);
    this.options.cache.setLive(false);
    const client = this.client;
    this.client = undefined;
    this.backendPid = undefined;
    await client?.end().catch(() => {});
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  private liveUntil(): number {
    // One heartbeat interval, plus the time it may take, plus slack for a busy event loop.
    return Date.now() + this.heartbeatMs + this.heartbeatTimeoutMs + 1_000;
  }

  private async connect(): Promise<void> {
    if (this.current === "stopped") return;
    this.current = "connecting";
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      application_name: "tenancy-cache-invalidation",
      keepAlive: true,
      connectionTimeoutMillis: this.heartbeatTimeoutMs,
      query_timeout: this.heartbeatTimeoutMs,
    });
    this.client = client;
    client.on("notification", (message) => {
      if (this.client !== client || message.channel !== TENANT_CHANGED_CHANNEL) return;
      this.received += 1;
      const payload = message.payload ?? "*";
      if (payload === "*") this.options.cache.clear();
      else this.options.cache.invalidate(payload);
    });
    client.on("error", (error) => this.drop(client, error));
    client.on("end", () => this.drop(client, new Error("connection ended")));
    try {
      await client.connect();
      const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      await client.query(`LISTEN ${TENANT_CHANGED_CHANNEL}`);
      if (this.client !== client) return; // dropped or stopped meanwhile
      this.backendPid = rows[0]?.pid;
      // Changes committed before LISTEN took effect were not announced to
      // us: setLive clears the cache and refuses fills that started before.
      this.options.cache.setLive(true, this.liveUntil());
      this.current = "listening";
      if (this.attempt > 0) this.options.log.info("tenant cache: invalidations received again, cache back in use");
      this.attempt = 0;
      for (const resolve of this.waiters.splice(0)) resolve();
      this.scheduleHeartbeat(client);
    } catch (error) {
      this.drop(client, error);
    }
  }

  private scheduleHeartbeat(client: pg.Client): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      if (this.client !== client) return;
      try {
        await client.query("SELECT 1");
        if (this.client !== client) return;
        this.options.cache.extendLive(this.liveUntil());
        this.scheduleHeartbeat(client);
      } catch (error) {
        this.drop(client, error);
      }
    }, this.heartbeatMs);
    this.timer.unref();
  }

  /** The connection is lost or in doubt: stop serving from the cache and reconnect. */
  private drop(client: pg.Client, error: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.backendPid = undefined;
    this.options.cache.setLive(false);
    clearTimeout(this.timer);
    client.removeAllListeners("end");
    client.on("error", () => {});
    void client.end().catch(() => {});
    if (this.current === "stopped") return;
    this.current = "connecting";
    const delay = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** this.attempt);
    this.attempt += 1;
    this.options.log.warn(
      { err: error, retryInMs: delay },
      "tenant cache: invalidation connection lost, cache cleared and bypassed until it is back",
    );
    this.timer = setTimeout(() => void this.connect(), delay);
    this.timer.unref();
  }
}
