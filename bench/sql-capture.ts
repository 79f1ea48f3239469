/**
 * Preloaded into the service (`node --import tsx --import ./bench/sql-capture.ts
 * src/main.ts`) by the benchmark's SQL check: records the text of every
 * statement the service sends through the `pg` driver while capture is on.
 * SIGUSR2 toggles capture and writes a marker line, so that the benchmark
 * can tell which statements one RPC issued and compare them with its
 * direct-SQL baseline. Off, it costs one boolean test per query.
 */
import { appendFileSync } from "node:fs";
import pg from "pg";

const file = process.env.BENCH_SQL_CAPTURE;
if (file) {
  let on = false;
  process.on("SIGUSR2", () => {
    on = !on;
    appendFileSync(file, JSON.stringify({ capture: on }) + "\n");
  });
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (this: unknown, ...args: unknown[]) {
    // The service's own listeners (the event hub, the cache's invalidation,
    // the relay) read on connections of their own whenever a notification
    // or their poll says so: not statements of the RPC being checked.
    const application = (this as { connectionParameters?: { application_name?: string } }).connectionParameters?.application_name;
    if (on && !application?.startsWith("tenancy-")) {
      const config = args[0] as string | { text?: string } | undefined;
      const text = typeof config === "string" ? config : config?.text;
      if (text) appendFileSync(file, JSON.stringify({ text }) + "\n");
    }
    return original.apply(this, args);
  };
}
