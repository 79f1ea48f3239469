import type { Deadline } from "../common/deadline.js";
import { Batcher, type BatcherOptions, type Settled } from "./batcher.js";
import { classifyDatabaseError } from "./failures.js";

/** A row as stored, with the sequence of the event its insert produced (undefined with the event triggers off). */
export interface Inserted<Row> {
  row: Row;
  eventSequence: bigint | undefined;
}

export interface BatchInsertOptions<Row extends { id: string }> {
  /**
   * One statement for the rows, cancelled past `deadline`; resolves with the
   * ids it inserted (it skips, rather than fails on, conflicts), each with
   * its event's sequence.
   */
  insertMany(rows: Row[], deadline: Deadline | undefined): Promise<Map<string, bigint | undefined>>;
  /**
   * One row the statement skipped, inserted on its own path, which answers
   * with the precise error, or with the stored row if things changed since.
   */
  insertAlone(row: Row, deadline: Deadline | undefined): Promise<Inserted<Row>>;
  batching?: Partial<BatcherOptions>;
}

/**
 * Coalesced inserts (CreateTenant, CreateMembership): the rows submitted
 * while earlier batches run are inserted with one statement and committed
 * together, bounded by the latest deadline of their callers. A row the
 * statement skipped goes through `insertAlone`, as does every row of a batch
 * that PostgreSQL refused for what one of its rows holds (SQLSTATE classes 22
 * and 23). Any other failure (a lost connection, too many connections, a
 * timeout, a conflict) fails the whole batch, as it would have failed each
 * request: retrying each row would multiply the work just when the database
 * can least take it.
 */
export function batchInsert<Row extends { id: string }>(options: BatchInsertOptions<Row>): Batcher<Row, Inserted<Row>> {
  const alone = async (row: Row, deadline: Deadline | undefined): Promise<Settled<Inserted<Row>>> => {
    try {
      return { ok: true, value: await options.insertAlone(row, deadline) };
    } catch (error) {
      return { ok: false, error };
    }
  };
  // Two statements in flight, not four as for reads: a create's transaction
  // writes events, whose commits PostgreSQL serializes (the feed's lock and
  // NOTIFY), so two larger batches beat four smaller ones. Measured with
  // the event triggers on and off alike (docs/performance.md).
  return new Batcher(
    async (rows, deadline) => {
      let inserted: Map<string, bigint | undefined>;
      try {
        inserted = await options.insertMany(rows, deadline);
      } catch (error) {
        if (rows.length === 1 || classifyDatabaseError(error) !== "row") throw error;
        inserted = new Map();
      }
      return Promise.all(
        rows.map((row) => (inserted.has(row.id) ? { ok: true as const, value: { row, eventSequence: inserted.get(row.id) } } : alone(row, deadline))),
      );
    },
    { maxBatch: options.batching?.maxBatch ?? 128, maxInFlight: options.batching?.maxInFlight ?? 2 },
  );
}
