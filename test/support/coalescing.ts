import pg from "pg";
import type { TestServer } from "./test-server.js";
import { waitUntil } from "./wait.js";
import { INSERT_WITH_EVENT_SEQUENCES_SQL } from "../../src/events/event-context.js";

/** How a coalesced create's statement starts in pg_stat_activity (its INSERT is a parameter of it). */
export const coalescedInsertStatement = INSERT_WITH_EVENT_SEQUENCES_SQL.slice(0, INSERT_WITH_EVENT_SEQUENCES_SQL.indexOf("("));

/**
 * Holds a coalescing batcher's statements at PostgreSQL behind a table lock,
 * so that the requests sent meanwhile queue up in it and go out together
 * once released: the batches a test sees are then exact, not a matter of
 * timing.
 *
 * `blocker()` sends one request that reaches the batcher; they are sent one
 * at a time, each once the previous is waiting on the lock, until every
 * batch the batcher may run at once is blocked and one more request stays
 * queued.
 */
export async function holdBatches(
  server: TestServer,
  options: {
    /** The table whose lock blocks the statements. */
    table: "Tenants" | "UserTenantMapping";
    /** SHARE blocks writes; ACCESS EXCLUSIVE blocks reads too. */
    mode: "SHARE" | "ACCESS EXCLUSIVE";
    /** The start of the batch statement's text, to find it in pg_stat_activity. */
    statement: string;
    stats: () => { batches: number; queued: number };
    blocker: () => Promise<unknown>;
  },
) {
  const holder = new pg.Client({ connectionString: server.databaseUrl });
  await holder.connect();
  await holder.query("BEGIN");
  await holder.query(`LOCK TABLE "${options.table}" IN ${options.mode} MODE`);
  const blocked = async () => {
    const { rows } = await server.sql.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND starts_with(query, $1)`,
      [options.statement],
    );
    return rows[0].n as number;
  };
  const blockers: Promise<unknown>[] = [];
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await holder.query("ROLLBACK");
    await holder.end();
  };
  try {
    while (options.stats().queued === 0) {
      blockers.push(options.blocker().catch((e: unknown) => e));
      const sent = blockers.length;
      await waitUntil(async () => options.stats().queued > 0 || (await blocked()) === sent, `blocker ${sent} blocked or queued`);
    }
  } catch (error) {
    await release();
    throw error;
  }
  return {
    /** Batches sent so far (the blocked ones included). */
    batchesBefore: options.stats().batches,
    /** The blockers' outcomes, once released. */
    blockers: () => Promise.all(blockers),
    /** Waits until `n` requests (the last blocker included) are queued. */
    queued: (n: number) => waitUntil(() => options.stats().queued >= n, `${n} requests queued`),
    /** Statements now waiting on the lock. */
    blocked,
    release,
    /**
     * Waits until these calls (sent meanwhile) are queued behind the
     * blockers (`queued` of them, if not all go to this batcher), releases
     * the lock, and resolves with their outcomes: they went out together,
     * in the batches that follow.
     */
    together: async <T>(calls: readonly Promise<T>[], queued = calls.length): Promise<T[]> => {
      const running = Promise.all(calls);
      try {
        await waitUntil(() => options.stats().queued >= 1 + queued, `${1 + queued} requests queued`);
        await release();
        return await running;
      } finally {
        await release();
      }
    },
  };
}

/**
 * Has PostgreSQL refuse a coalesced INSERT that carries a row matching
 * `when` (a trigger's WHEN condition on NEW) with SQLSTATE `batch`; the
 * same row inserted alone passes, or is refused with `alone`. Resolves
 * with the function that removes the trigger again.
 */
export async function refuseCoalescedRows(
  server: TestServer,
  options: { table: "Tenants" | "UserTenantMapping"; when: string; batch: string; alone?: string },
): Promise<() => Promise<void>> {
  const name = `refuse_${Math.random().toString(36).slice(2, 10)}`;
  const batchFunction = coalescedInsertStatement.slice(coalescedInsertStatement.lastIndexOf(" ") + 1);
  await server.sql.query(`
    CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF strpos(current_query(), '${batchFunction}') > 0 THEN
        RAISE EXCEPTION 'refused by the test' USING ERRCODE = '${options.batch}';
      END IF;
      ${options.alone ? `RAISE EXCEPTION 'refused by the test' USING ERRCODE = '${options.alone}';` : ""}
      RETURN NEW;
    END $$;
    CREATE TRIGGER ${name} BEFORE INSERT ON "${options.table}" FOR EACH ROW WHEN (${options.when}) EXECUTE FUNCTION ${name}();
  `);
  return async () => {
    await server.sql.query(`DROP TRIGGER ${name} ON "${options.table}"; DROP FUNCTION ${name}()`);
  };
}

/** Holds the coalesced creates of tenants or of memberships (see holdBatches); `blocker` creates one. */
export function holdCoalescedCreates(server: TestServer, kind: "tenants" | "memberships", blocker: () => Promise<unknown>) {
  return holdBatches(server, {
    table: kind === "tenants" ? "Tenants" : "UserTenantMapping",
    mode: "SHARE",
    statement: coalescedInsertStatement,
    stats: () => (kind === "tenants" ? server.tenantInserter.stats : server.membershipInserter.stats),
    blocker,
  });
}
