import type { EntityManager } from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";

/** A row of "Events" as read for the feed (see Migration20261128000000_events). */
export interface EventRow {
  sequence: string;
  id: string;
  time: unknown;
  type: string;
  tenant_id: string | null;
  user_id: string | null;
  actor: string | null;
  request_id: string | null;
  resource: Record<string, unknown>;
  changed_fields: string[];
}

/** Which events a reader wants and may see; every part optional. */
export interface EventQuery {
  tenantId?: string;
  types?: readonly string[];
  actor?: string;
  startTime?: Date;
  endTime?: Date;
  /**
   * For callers who are not platform administrators: the tenants whose
   * events they may see, the tenants whose memberships they administer, and
   * their own user id (their own memberships' events).
   */
  visibleTo?: { memberOf: readonly string[]; adminOf: readonly string[]; userId: string };
}

const COLUMNS = `sequence::text AS sequence, id, time, type, tenant_id, user_id, actor, request_id, resource, changed_fields`;

/** Every event after $1, oldest first, at most $2: the hub's one query, on its own connection. */
export const EVENTS_AFTER_SQL = `SELECT ${COLUMNS} FROM "Events" WHERE sequence > $1::bigint ORDER BY "Events".sequence LIMIT $2`;
/** The latest sequence committed; the pruned mark when retention removed every event. */
export const LATEST_SEQUENCE_SQL = `SELECT greatest((SELECT max(sequence) FROM "Events"), (SELECT pruned_through FROM "EventFeed"), 0)::text AS sequence`;

function conditions(query: EventQuery, params: unknown[]): string[] {
  const where: string[] = [];
  if (query.tenantId !== undefined) {
    where.push(`tenant_id = ?::uuid`);
    params.push(query.tenantId);
  }
  if (query.types !== undefined && query.types.length > 0) {
    where.push(`type = ANY(?::text[])`);
    params.push(query.types);
  }
  if (query.actor !== undefined) {
    where.push(`actor = ?::uuid`);
    params.push(query.actor);
  }
  if (query.startTime !== undefined) {
    where.push(`time >= ?::timestamptz`);
    params.push(query.startTime.toISOString());
  }
  if (query.endTime !== undefined) {
    where.push(`time < ?::timestamptz`);
    params.push(query.endTime.toISOString());
  }
  if (query.visibleTo !== undefined) {
    where.push(
      `(starts_with(type, 'params_schema.') OR (tenant_id = ANY(?::uuid[]) AND (type NOT LIKE 'membership.%' OR tenant_id = ANY(?::uuid[]) OR user_id = ?::uuid)))`,
    );
    params.push(query.visibleTo.memberOf, query.visibleTo.adminOf, query.visibleTo.userId);
  }
  return where;
}

/** Reads of the change feed, and its retention. Events are written by triggers only. */
export class EventRepository {
  constructor(private readonly em: EntityManager) {}

  /** One page of events after (or, newest first, before) a sequence. */
  async list(query: EventQuery, page: { after?: bigint; descending: boolean; limit: number }): Promise<EventRow[]> {
    const params: unknown[] = [];
    const where = conditions(query, params);
    if (page.after !== undefined) {
      where.push(page.descending ? `sequence < ?::bigint` : `sequence > ?::bigint`);
      params.push(page.after.toString());
    }
    return sqlQuery<EventRow>(
      this.em,
      `SELECT ${COLUMNS} FROM "Events"${where.length ? ` WHERE ${where.join(" AND ")}` : ""}
        ORDER BY "Events".sequence ${page.descending ? "DESC" : "ASC"} LIMIT ${Number(page.limit)}`,
      params,
    );
  }

  /** The latest sequence committed (0 before the first event). */
  async latestSequence(): Promise<bigint> {
    const [row] = await sqlQuery<{ sequence: string }>(this.em, LATEST_SEQUENCE_SQL, []);
    return BigInt(row?.sequence ?? 0);
  }

  /** Events up to this sequence were pruned: resuming before it loses events. */
  async prunedThrough(): Promise<bigint> {
    const [row] = await sqlQuery<{ pruned_through: string }>(this.em, `SELECT pruned_through::text AS pruned_through FROM "EventFeed"`, []);
    return BigInt(row?.pruned_through ?? 0);
  }

  /**
   * Deletes events committed before `before`, oldest first, at most `batch`
   * at a time, and moves the pruned mark; returns how many it deleted.
   * Sequences follow commit order, so everything up to the newest expired
   * event can go. With `keepUnrelayed` (a NATS relay is configured), events
   * after "EventFeed".relayed_through stay, however old, until the relay has
   * published them.
   */
  async prune(before: Date, batch = 10_000, keepUnrelayed = false): Promise<number> {
    return this.em.transactional(async (tx) => {
      const rows = await sqlQuery<{ n: string }>(
        tx,
        `WITH doomed AS (
           SELECT sequence FROM "Events" WHERE time < ?::timestamptz
             ${keepUnrelayed ? `AND sequence <= (SELECT relayed_through FROM "EventFeed")` : ""}
            ORDER BY sequence LIMIT ?
         ), gone AS (
           DELETE FROM "Events" e USING doomed d WHERE e.sequence = d.sequence RETURNING e.sequence
         ), mark AS (
           UPDATE "EventFeed" SET pruned_through = greatest(pruned_through, (SELECT max(sequence) FROM gone))
            WHERE EXISTS (SELECT 1 FROM gone)
         )
         SELECT count(*)::text AS n FROM gone`,
        [before.toISOString(), batch],
      );
      return Number(rows[0]?.n ?? 0);
    });
  }
}
