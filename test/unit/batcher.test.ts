import { describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import { Batcher, type Settled } from "../../src/database/batcher.js";
import { DeadlineExceededError } from "../../src/common/errors.js";
import { waitUntil } from "../support/wait.js";

/**
 * Batch work that records its calls and answers when told to: "value of k"
 * for each item k, a failure of that item alone for items named "bad…".
 */
function controlledQuery() {
  const calls: Array<{ keys: string[]; deadline: number | undefined; answer(): void; fail(e: unknown): void }> = [];
  const query = (keys: string[], deadline: number | undefined) =>
    new Promise<Settled<string>[]>((resolve, reject) => {
      calls.push({
        keys,
        deadline,
        answer: () =>
          resolve(keys.map((k) => (k.startsWith("bad") ? { ok: false, error: new Error(`${k} refused`) } : { ok: true, value: `value of ${k}` }))),
        fail: reject,
      });
    });
  const sent = (n: number) => waitUntil(() => calls.length >= n, `${n} batch(es) sent`);
  return { calls, query, sent };
}

/**
 * The batcher sends on the next setImmediate after a submit, and calls the
 * work in a microtask of that callback: once an immediate queued after the
 * submit has run, whatever it was going to send is sent. Only for checking
 * that something was *not* sent.
 */
const schedulingTurn = () => new Promise((r) => setImmediate(r));

describe("Batcher", () => {
  it("sends the items submitted together in one batch and gives each caller its own outcome", async () => {
    const { calls, query, sent } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 100, maxInFlight: 2 });
    const results = ["a", "b", "bad-1", "c"].map((k) => batcher.submit(k).then((v) => v, (e: Error) => `failed: ${e.message}`));
    await sent(1);
    expect(calls.map((c) => c.keys)).toEqual([["a", "b", "bad-1", "c"]]);
    calls[0]!.answer();
    expect(await Promise.all(results)).toEqual(["value of a", "value of b", "failed: bad-1 refused", "value of c"]);
    expect(batcher.stats).toEqual({ batches: 1, items: 4, abandoned: 0 });
  });

  it("holds new keys while maxInFlight queries run, then sends them in one query", async () => {
    const { calls, query, sent } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 100, maxInFlight: 1 });
    const first = batcher.submit("a");
    await sent(1);
    const later = Promise.all(["b", "c", "d"].map((k) => batcher.submit(k)));
    await schedulingTurn();
    expect(calls).toHaveLength(1);
    calls[0]!.answer();
    expect(await first).toBe("value of a");
    await sent(2);
    expect(calls.map((c) => c.keys)).toEqual([["a"], ["b", "c", "d"]]);
    calls[1]!.answer();
    expect(await later).toEqual(["value of b", "value of c", "value of d"]);
  });

  it("splits more keys than maxBatch into several queries", async () => {
    const { calls, query, sent } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 2, maxInFlight: 10 });
    const results = Promise.all(["a", "b", "c", "d", "e"].map((k) => batcher.submit(k)));
    await sent(3);
    expect(calls.map((c) => c.keys)).toEqual([["a", "b"], ["c", "d"], ["e"]]);
    for (const call of calls) call.answer();
    expect(await results).toEqual(["a", "b", "c", "d", "e"].map((k) => `value of ${k}`));
  });

  it("fails every caller of a failed query, and only them", async () => {
    const { calls, query, sent } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 2, maxInFlight: 10 });
    const results = ["a", "b", "c"].map((k) => batcher.submit(k).then((v: string) => v, (e: Error) => `failed: ${e.message}`));
    await sent(2);
    calls[0]!.fail(new Error("connection lost"));
    calls[1]!.answer();
    expect(await Promise.all(results)).toEqual(["failed: connection lost", "failed: connection lost", "value of c"]);
  });

  it("lets a caller stop waiting when it gives up while the query goes on for the others", async () => {
    const { calls, query, sent } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 10, maxInFlight: 1 });
    const controller = new AbortController();
    const impatient = batcher.submit("a", { signal: controller.signal, deadline: Date.now() + 60_000 }).catch((e: unknown) => e);
    const patient = batcher.submit("b");
    await sent(1);
    controller.abort(new Error("deadline"));
    expect(await impatient).toEqual(new Error("deadline"));
    calls[0]!.answer();
    expect(await patient).toBe("value of b");
  });

  it("bounds a query by its callers' latest deadline, or not at all when one of them has none", async () => {
    const { calls, query, sent } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 10, maxInFlight: 1 });
    const signal = new AbortController().signal;
    const soon = Date.now() + 20_000;
    const later = Date.now() + 90_000;
    const both = Promise.all([batcher.submit("a", { signal, deadline: soon }), batcher.submit("b", { signal, deadline: later })]);
    await sent(1);
    expect(calls[0]!.deadline).toBe(later);
    calls[0]!.answer();
    await both;
    const mixed = Promise.all([batcher.submit("a", { signal, deadline: soon }), batcher.submit("b", { signal })]);
    await sent(2);
    expect(calls[1]!.deadline).toBeUndefined();
    calls[1]!.answer();
    await mixed;
  });

  it("refuses at once a caller that has already given up", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 10, maxInFlight: 1 });
    const controller = new AbortController();
    controller.abort(new Error("too late"));
    await expect(batcher.submit("a", { signal: controller.signal })).rejects.toThrow("too late");
    const live = new AbortController().signal;
    await expect(batcher.submit("b", { signal: live, deadline: Date.now() - 1 })).rejects.toBeInstanceOf(DeadlineExceededError);
    await schedulingTurn();
    expect(calls).toHaveLength(0);
  });

  it("leaves out of the next batch the callers that gave up while it waited", async () => {
    const { calls, query, sent } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 10, maxInFlight: 1 });
    const first = batcher.submit("a");
    await sent(1);
    // While "a" runs, four callers queue: one is cancelled, one's deadline
    // passes (before its timer could abort its signal), two still wait.
    const cancelled = new AbortController();
    const expiresAt = Date.now() + 30;
    const outcomes = [
      batcher.submit("cancelled", { signal: cancelled.signal }),
      batcher.submit("expiring", { signal: new AbortController().signal, deadline: expiresAt }),
      batcher.submit("b", { signal: new AbortController().signal, deadline: Date.now() + 60_000 }),
      batcher.submit("c"),
    ].map((p) => p.then((v) => v, (e: unknown) => e));
    cancelled.abort(new ConnectError("the call was cancelled", Code.Canceled));
    await waitUntil(() => Date.now() > expiresAt, "the expiring caller's deadline passed");
    calls[0]!.answer();
    expect(await first).toBe("value of a");
    await sent(2);
    expect(calls[1]!.keys).toEqual(["b", "c"]);
    calls[1]!.answer();
    const [cancelledOutcome, expiredOutcome, b, c] = await Promise.all(outcomes);
    expect(ConnectError.from(cancelledOutcome).code).toBe(Code.Canceled);
    expect(expiredOutcome).toBeInstanceOf(DeadlineExceededError);
    expect([b, c]).toEqual(["value of b", "value of c"]);
    expect(batcher.stats).toEqual({ batches: 2, items: 3, abandoned: 2 });
  });
});
