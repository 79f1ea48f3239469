import { describe, expect, it } from "vitest";
import { Batcher, type Settled } from "../../src/database/batcher.js";

/**
 * Batch work that records its calls and answers when told to: "value of k"
 * for each item k, a failure of that item alone for items named "bad…".
 */
function controlledQuery() {
  const calls: Array<{ keys: string[]; timeoutMs: number | undefined; answer(): void; fail(e: unknown): void }> = [];
  const query = (keys: string[], timeoutMs: number | undefined) =>
    new Promise<Settled<string>[]>((resolve, reject) => {
      calls.push({
        keys,
        timeoutMs,
        answer: () =>
          resolve(keys.map((k) => (k.startsWith("bad") ? { ok: false, error: new Error(`${k} refused`) } : { ok: true, value: `value of ${k}` }))),
        fail: reject,
      });
    });
  return { calls, query };
}

/** Lets the batcher's scheduled work (a setImmediate after promise callbacks) run. */
const tick = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

describe("Batcher", () => {
  it("sends the items submitted together in one batch and gives each caller its own outcome", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 100, maxInFlight: 2 });
    const results = ["a", "b", "bad-1", "c"].map((k) => batcher.submit(k).then((v) => v, (e: Error) => `failed: ${e.message}`));
    await tick();
    expect(calls.map((c) => c.keys)).toEqual([["a", "b", "bad-1", "c"]]);
    calls[0]!.answer();
    expect(await Promise.all(results)).toEqual(["value of a", "value of b", "failed: bad-1 refused", "value of c"]);
    expect(batcher.stats).toEqual({ batches: 1, items: 4 });
  });

  it("holds new keys while maxInFlight queries run, then sends them in one query", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 100, maxInFlight: 1 });
    const first = batcher.submit("a");
    await tick();
    const later = Promise.all(["b", "c", "d"].map((k) => batcher.submit(k)));
    await tick();
    expect(calls).toHaveLength(1);
    calls[0]!.answer();
    expect(await first).toBe("value of a");
    await tick();
    expect(calls.map((c) => c.keys)).toEqual([["a"], ["b", "c", "d"]]);
    calls[1]!.answer();
    expect(await later).toEqual(["value of b", "value of c", "value of d"]);
  });

  it("splits more keys than maxBatch into several queries", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 2, maxInFlight: 10 });
    const results = Promise.all(["a", "b", "c", "d", "e"].map((k) => batcher.submit(k)));
    await tick();
    expect(calls.map((c) => c.keys)).toEqual([["a", "b"], ["c", "d"], ["e"]]);
    for (const call of calls) call.answer();
    expect(await results).toEqual(["a", "b", "c", "d", "e"].map((k) => `value of ${k}`));
  });

  it("fails every caller of a failed query, and only them", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 2, maxInFlight: 10 });
    const results = ["a", "b", "c"].map((k) => batcher.submit(k).then((v: string) => v, (e: Error) => `failed: ${e.message}`));
    await tick();
    calls[0]!.fail(new Error("connection lost"));
    calls[1]!.answer();
    expect(await Promise.all(results)).toEqual(["failed: connection lost", "failed: connection lost", "value of c"]);
  });

  it("lets a caller stop waiting at its deadline while the query goes on for the others", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 10, maxInFlight: 1 });
    const controller = new AbortController();
    const impatient = batcher.submit("a", { signal: controller.signal, timeoutMs: 50 }).catch((e: unknown) => e);
    const patient = batcher.submit("b");
    await tick();
    controller.abort(new Error("deadline"));
    expect(await impatient).toEqual(new Error("deadline"));
    calls[0]!.answer();
    expect(await patient).toBe("value of b");
  });

  it("bounds a query by its callers' latest deadline, or not at all when one of them has none", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 10, maxInFlight: 1 });
    const signal = new AbortController().signal;
    const both = Promise.all([batcher.submit("a", { signal, timeoutMs: 200 }), batcher.submit("b", { signal, timeoutMs: 900 })]);
    await tick();
    expect(calls[0]!.timeoutMs).toBeGreaterThan(800);
    expect(calls[0]!.timeoutMs).toBeLessThanOrEqual(900);
    calls[0]!.answer();
    await both;
    const mixed = Promise.all([batcher.submit("a", { signal, timeoutMs: 200 }), batcher.submit("b")]);
    await tick();
    expect(calls[1]!.timeoutMs).toBeUndefined();
    calls[1]!.answer();
    await mixed;
  });

  it("refuses at once a caller whose deadline has already passed", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new Batcher(query, { maxBatch: 10, maxInFlight: 1 });
    const controller = new AbortController();
    controller.abort(new Error("too late"));
    await expect(batcher.submit("a", { signal: controller.signal, timeoutMs: 0 })).rejects.toThrow("too late");
    await tick();
    expect(calls).toHaveLength(0);
  });
});
