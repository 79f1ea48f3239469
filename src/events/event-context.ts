import type { EntityManager } from "@mikro-orm/postgresql";
import { sqlQuery } from "../database/sql.js";

/**
 * What the change feed records about a write besides the change itself (see
 * Migration20261128000000_events): who made it and for which request, and,
 * once it is written, the sequence of its last event. One per write RPC,
 * created by the handler, filled in by the service.
 */
export class WriteReceipt {
  /** The sequence of the last event the write produced; undefined until it ran, or when it changed nothing. */
  eventSequence: bigint | undefined;

  constructor(
    /** The authenticated principal's user id, or undefined (anonymous, or the service itself). */
    readonly actor: string | undefined,
    readonly requestId: string | undefined = undefined,
  ) {}
}

/** The response header that carries a write's event sequence (read-your-writes through the feed). */
export const EVENT_SEQUENCE_HEADER = "tenancy-event-sequence";

/**
 * Names the actor and the request of the current transaction, for the event
 * triggers (transaction-local settings: they end with the transaction and
 * never leak to the next user of the pooled connection).
 */
export async function tagTransaction(em: EntityManager, receipt: WriteReceipt): Promise<void> {
  await sqlQuery(em, `SELECT set_config('tenancy.actor', ?, true), set_config('tenancy.request_id', ?, true)`, [
    receipt.actor ?? "",
    receipt.requestId ?? "",
  ]);
}

/**
 * The sequence of the last event the current transaction produced (left by
 * the triggers in a transaction-local setting); call it before the commit.
 */
export async function readEventSequence(em: EntityManager, receipt: WriteReceipt): Promise<void> {
  const [row] = await sqlQuery<{ sequence: string | null }>(em, `SELECT nullif(current_setting('tenancy.event_sequence', true), '') AS sequence`, []);
  if (row?.sequence) receipt.eventSequence = BigInt(row.sequence);
}

/** The statement that sends a coalesced batch (tests find it in pg_stat_activity by its start). */
export const INSERT_WITH_EVENT_SEQUENCES_SQL = `SELECT id, event_sequence::text AS event_sequence FROM tenancy_insert_with_event_sequences(?, ?::jsonb)`;

/**
 * Runs a coalesced batch's INSERT (`insert`: takes the batch as `$1`, a JSON
 * array, and returns the inserted keys as `id`) and resolves with each
 * inserted key and the sequence of the event it produced (undefined with
 * the event triggers off), in one statement and one round trip
 * (Migration20261128030000_batch_event_sequences).
 */
export async function insertWithEventSequences(
  em: EntityManager,
  insert: string,
  batch: readonly unknown[],
  timeoutMs: number | undefined,
): Promise<Map<string, bigint | undefined>> {
  const rows = await sqlQuery<{ id: string; event_sequence: string | null }>(
    em,
    INSERT_WITH_EVENT_SEQUENCES_SQL,
    [insert, JSON.stringify(batch)],
    { timeoutMs },
  );
  return new Map(rows.map((row) => [row.id, row.event_sequence === null ? undefined : BigInt(row.event_sequence)]));
}

/** Puts a write's event sequence in its response header, when it produced an event. */
export function setEventSequenceHeader(header: Headers, sequence: bigint | undefined): void {
  if (sequence !== undefined) header.set(EVENT_SEQUENCE_HEADER, sequence.toString());
}
