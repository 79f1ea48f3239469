/** The caller's deadline: it stops waiting when `signal` aborts, `timeoutMs` from now. */
export interface Deadline {
  signal: AbortSignal;
  timeoutMs: number;
}

export interface BatcherOptions {
  /** Most items in one batch. */
  maxBatch: number;
  /**
   * Most batches running at once. While they all run, new items wait and go
   * out together in the next batch: under load the batches grow, instead of
   * a queue of one-row statements forming in front of the connection pool.
   */
  maxInFlight: number;
}

/** One item's outcome in a batch. */
export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

interface Waiter<I, O> {
  item: I;
  resolve(value: O): void;
  reject(error: unknown): void;
  /** Epoch ms when this caller stops waiting; undefined: never. */
  until: number | undefined;
}

/**
 * Coalesces concurrent requests for the same kind of database work: the items
 * submitted while earlier batches run go out together in one batch (one
 * statement for many rows), and each caller gets its own item's outcome.
 * Alone, an item waits for nothing but its own batch, sent once the I/O
 * callbacks of the current turn have run.
 *
 * `run` answers with one outcome per item, in order; if it throws, every item
 * of the batch fails with that error. Its `timeoutMs` is the latest deadline
 * of the batch's callers (none if one of them has none), so the work never
 * outlives all of them.
 */
export class Batcher<I, O> {
  private pending: Waiter<I, O>[] = [];
  private inFlight = 0;
  private scheduled = false;
  readonly stats = { batches: 0, items: 0 };

  constructor(
    private readonly run: (items: I[], timeoutMs: number | undefined) => Promise<Settled<O>[]>,
    private readonly options: BatcherOptions,
  ) {}

  submit(item: I, deadline?: Deadline): Promise<O> {
    if (deadline?.signal.aborted) return Promise.reject(deadline.signal.reason);
    return new Promise<O>((resolve, reject) => {
      if (!deadline) {
        this.pending.push({ item, resolve, reject, until: undefined });
      } else {
        // The caller stops waiting at its deadline; the batch goes on for the others.
        const { signal } = deadline;
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        this.pending.push({
          item,
          resolve: (value) => {
            signal.removeEventListener("abort", onAbort);
            resolve(value);
          },
          reject: (error) => {
            signal.removeEventListener("abort", onAbort);
            reject(error);
          },
          until: Date.now() + deadline.timeoutMs,
        });
      }
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.pending.length === 0) return;
    this.scheduled = true;
    // After the current I/O callbacks, so that the requests that arrived in
    // the same read of a socket join this batch.
    setImmediate(() => {
      this.scheduled = false;
      while (this.inFlight < this.options.maxInFlight && this.pending.length > 0) {
        this.send(this.pending.splice(0, this.options.maxBatch));
      }
    });
  }

  private send(batch: Waiter<I, O>[]): void {
    let until: number | undefined = 0;
    for (const w of batch) until = w.until === undefined || until === undefined ? undefined : Math.max(until, w.until);
    const timeoutMs = until === undefined ? undefined : Math.max(1, until - Date.now());
    this.inFlight++;
    this.stats.batches++;
    this.stats.items += batch.length;
    // `run` is called on a later turn: a synchronous throw is a rejection too.
    Promise.resolve()
      .then(() => this.run(batch.map((w) => w.item), timeoutMs))
      .then(
        (outcomes) => {
          batch.forEach((w, i) => {
            const outcome = outcomes[i];
            if (!outcome) w.reject(new Error(`batch answered ${outcomes.length} outcomes for ${batch.length} items`));
            else if (outcome.ok) w.resolve(outcome.value);
            else w.reject(outcome.error);
          });
        },
        (error: unknown) => {
          for (const w of batch) w.reject(error);
        },
      )
      .finally(() => {
        this.inFlight--;
        this.schedule();
      });
  }
}
