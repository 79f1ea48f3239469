import { Batcher, type BatcherOptions, type Settled } from "./batcher.js";

/**
 * Whether a failed statement was refused by PostgreSQL for what it asked
 * (a SQLSTATE outside the connection and operator-intervention classes 08
 * and 57), so that running its rows again one by one gives each its own
 * answer. After any other failure (a lost connection, a cancelled statement)
 * the outcome is unknown or shared, and is reported as it is.
 */
function isRefusedStatement(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith("08") && !code.startsWith("57");
}

export interface BatchInsertOptions<Row extends { id: string }> {
  /** One statement for the rows; resolves with the ids it inserted (it skips, rather than fails on, conflicts). */
  insertMany(rows: Row[]): Promise<Set<string>>;
  /**
   * One row the statement skipped, inserted on its own path, which answers
   * with the precise error, or with the stored row if things changed since.
   */
  insertAlone(row: Row): Promise<Row>;
  batching?: Partial<BatcherOptions>;
}

/**
 * Coalesced inserts (CreateTenant, CreateMembership): the rows submitted
 * while earlier batches run are inserted with one statement and committed
 * together. A row the statement skipped goes through `insertAlone`, as does
 * every row of a batch PostgreSQL refused as a whole; a lost connection fails
 * the whole batch, as it would have failed each request.
 */
export function batchInsert<Row extends { id: string }>(options: BatchInsertOptions<Row>): Batcher<Row, Row> {
  const alone = async (row: Row): Promise<Settled<Row>> => {
    try {
      return { ok: true, value: await options.insertAlone(row) };
    } catch (error) {
      return { ok: false, error };
    }
  };
  return new Batcher(
    async (rows) => {
      let inserted: Set<string>;
      try {
        inserted = await options.insertMany(rows);
      } catch (error) {
        if (rows.length === 1 || !isRefusedStatement(error)) throw error;
        inserted = new Set();
      }
      return Promise.all(rows.map((row) => (inserted.has(row.id) ? { ok: true as const, value: row } : alone(row))));
    },
    { maxBatch: options.batching?.maxBatch ?? 128, maxInFlight: options.batching?.maxInFlight ?? 4 },
  );
}
