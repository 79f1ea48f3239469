import { hasPassed, type Deadline } from "../common/deadline.js";
import { DeadlineExceededError } from "../common/errors.js";

/** Who waits for an item: gone once `signal` aborts (cancelled, or its deadline passed). */
export interface Caller {
  signal: AbortSignal;
  /** Bounds the work done for this caller; none when undefined. */
  deadline?: Deadline;
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
  caller: Caller | undefined;
}

/**
 * Coalesces concurrent requests for the same kind of database work: the items
 * submitted while earlier batches run go out together in one batch (one
 * statement for many rows), and each caller gets its own item's outcome.
 * Alone, an item waits for nothing but its own batch, sent once the I/O
 * callbacks of the current turn have run.
 *
 * `run` answers with one outcome per item, in order; if it throws, every item
 * of the batch fails with that error. Its `deadline` is the latest of the
 * batch's callers (none if one of them has none), so the work never outlives
 * all of them. A caller stops waiting when it gives up (its signal aborts),
 * and its item is left out of any batch not yet sent: under overload, work
 * nobody waits for any more is not done.
 */
export class Batcher<I, O> {
  private pending: Waiter<I, O>[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Batches sent, items they carried, and items dropped before a batch because their caller had given up. */
  readonly stats = { batches: 0, items: 0, abandoned: 0 };

  constructor(
    private readonly run: (items: I[], deadline: Deadline | undefined) => Promise<Settled<O>[]>,
    private readonly options: BatcherOptions,
  ) {}

  /** Items waiting for a batch (while maxInFlight batches run). */
  get queued(): number {
    return this.pending.length;
  }

  submit(item: I, caller?: Caller): Promise<O> {
    if (caller?.signal.aborted) return Promise.reject(caller.signal.reason);
    if (hasPassed(caller?.deadline)) return Promise.reject(new DeadlineExceededError());
    return new Promise<O>((resolve, reject) => {
      if (!caller) {
        this.pending.push({ item, resolve, reject, caller });
      } else {
        // The caller stops waiting when it gives up; the batch goes on for the others.
        const { signal } = caller;
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
          caller,
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
        const batch = this.take();
        if (batch.length > 0) this.send(batch);
      }
    });
  }

  /** Up to maxBatch waiters from the queue, leaving out (and answering) those whose caller gave up. */
  private take(): Waiter<I, O>[] {
    const batch: Waiter<I, O>[] = [];
    let taken = 0;
    while (taken < this.pending.length && batch.length < this.options.maxBatch) {
      const waiter = this.pending[taken++]!;
      const caller = waiter.caller;
      if (caller?.signal.aborted) {
        // Already rejected by its abort listener.
        this.stats.abandoned++;
      } else if (hasPassed(caller?.deadline)) {
        // Its signal has not fired yet (timers run after I/O), but no answer can reach it in time.
        this.stats.abandoned++;
        waiter.reject(new DeadlineExceededError());
      } else {
        batch.push(waiter);
      }
    }
    this.pending.splice(0, taken);
    return batch;
  }

  private send(batch: Waiter<I, O>[]): void {
    let deadline: Deadline | undefined = 0;
    for (const w of batch) {
      const own = w.caller?.deadline;
      deadline = own === undefined || deadline === undefined ? undefined : Math.max(deadline, own);
    }
    this.inFlight++;
    this.stats.batches++;
    this.stats.items += batch.length;
    // `run` is called on a later turn: a synchronous throw is a rejection too.
    Promise.resolve()
      .then(() => this.run(batch.map((w) => w.item), deadline))
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
