import type { MikroORM } from "@mikro-orm/postgresql";
import type { Logger } from "../logger.js";
import { purgeExpiredTenants } from "../tenants/tenant.purger.js";
import { forgetOldRequestIds } from "../idempotency/request-id.js";
import { EventRepository } from "../events/event.repository.js";

export interface MaintenanceOptions {
  intervalMs: number;
  requestIdRetentionMs: number;
  /** How long change-feed events are kept; older ones are pruned (watchers resuming before them get EVENTS_EXPIRED). */
  eventRetentionMs: number;
  /** A NATS relay is configured: events it has not published yet are kept, however old (see EventRepository.prune). */
  keepUnrelayedEvents?: boolean;
}

/**
 * Periodic housekeeping that every instance runs; each step is safe to run
 * concurrently from several instances. Failures (the database being away)
 * are logged and retried on the next tick.
 */
export function startMaintenance(orm: MikroORM, log: Logger, options: MaintenanceOptions): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const tick = async () => {
    const em = orm.em.fork();
    try {
      let purged: string[];
      do {
        purged = await purgeExpiredTenants(em);
        if (purged.length) log.info({ tenants: purged }, "purged expired tenants");
      } while (purged.length > 0);
      const forgotten = await forgetOldRequestIds(em, options.requestIdRetentionMs);
      if (forgotten) log.debug({ forgotten }, "forgot old request ids");
      const events = new EventRepository(em);
      let pruned: number;
      do {
        pruned = await events.prune(new Date(Date.now() - options.eventRetentionMs), undefined, options.keepUnrelayedEvents);
        if (pruned) log.info({ events: pruned }, "pruned expired events");
      } while (pruned > 0);
    } catch (error) {
      log.warn({ err: error }, "maintenance failed; retrying on the next tick");
    }
  };
  const timer = setInterval(() => {
    if (!running) running = tick().finally(() => (running = undefined));
  }, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
