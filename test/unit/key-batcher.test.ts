import { describe, expect, it } from "vitest";
import { KeyBatcher } from "../../src/tenants/tenant.loader.js";

/** A query that records its calls and answers when told to. */
function controlledQuery() {
  const calls: Array<{ keys: string[]; timeoutMs: number | undefined; answer(values?: Map<string, string>): void; fail(e: unknown): void }> = [];
  const query = (keys: string[], timeoutMs: number | undefined) =>
    new Promise<Map<string, string>>((resolve, reject) => {
      calls.push({
        keys,
        timeoutMs,
        answer: (values) => resolve(values ?? new Map(keys.filter((k) => !k.startsWith("missing")).map((k) => [k, `value of ${k}`]))),
        fail: reject,
      });
    });
  return { calls, query };
}

/** Lets the batcher's scheduled work (a setImmediate after promise callbacks) run. */
const tick = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

describe("KeyBatcher", () => {
  it("sends the keys asked for together in one query and gives each caller its own value", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new KeyBatcher(query, { maxBatch: 100, maxInFlight: 2 });
    const results = Promise.all(["a", "b", "a", "missing-1", "c"].map((k) => batcher.load(k)));
    await tick();
    expect(calls.map((c) => c.keys)).toEqual([["a", "b", "missing-1", "c"]]);
    calls[0]!.answer();
    expect(await results).toEqual(["value of a", "value of b", "value of a", undefined, "value of c"]);
    expect(batcher.stats).toEqual({ queries: 1, keys: 4 });
  });

  it("holds new keys while maxInFlight queries run, then sends them in one query", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new KeyBatcher(query, { maxBatch: 100, maxInFlight: 1 });
    const first = batcher.load("a");
    await tick();
    const later = Promise.all(["b", "c", "d"].map((k) => batcher.load(k)));
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
    const batcher = new KeyBatcher(query, { maxBatch: 2, maxInFlight: 10 });
    const results = Promise.all(["a", "b", "c", "d", "e"].map((k) => batcher.load(k)));
    await tick();
    expect(calls.map((c) => c.keys)).toEqual([["a", "b"], ["c", "d"], ["e"]]);
    for (const call of calls) call.answer();
    expect(await results).toEqual(["a", "b", "c", "d", "e"].map((k) => `value of ${k}`));
  });

  it("fails every caller of a failed query, and only them", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new KeyBatcher(query, { maxBatch: 2, maxInFlight: 10 });
    const results = ["a", "b", "c"].map((k) => batcher.load(k).then((v) => v, (e: Error) => `failed: ${e.message}`));
    await tick();
    calls[0]!.fail(new Error("connection lost"));
    calls[1]!.answer();
    expect(await Promise.all(results)).toEqual(["failed: connection lost", "failed: connection lost", "value of c"]);
  });

  it("lets a caller stop waiting at its deadline while the query goes on for the others", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new KeyBatcher(query, { maxBatch: 10, maxInFlight: 1 });
    const controller = new AbortController();
    const impatient = batcher.load("a", { signal: controller.signal, timeoutMs: 50 }).catch((e: unknown) => e);
    const patient = batcher.load("a");
    await tick();
    controller.abort(new Error("deadline"));
    expect(await impatient).toEqual(new Error("deadline"));
    calls[0]!.answer();
    expect(await patient).toBe("value of a");
  });

  it("bounds a query by its callers' latest deadline, or not at all when one of them has none", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new KeyBatcher(query, { maxBatch: 10, maxInFlight: 1 });
    const signal = new AbortController().signal;
    const both = Promise.all([batcher.load("a", { signal, timeoutMs: 200 }), batcher.load("b", { signal, timeoutMs: 900 })]);
    await tick();
    expect(calls[0]!.timeoutMs).toBeGreaterThan(800);
    expect(calls[0]!.timeoutMs).toBeLessThanOrEqual(900);
    calls[0]!.answer();
    await both;
    const mixed = Promise.all([batcher.load("a", { signal, timeoutMs: 200 }), batcher.load("b")]);
    await tick();
    expect(calls[1]!.timeoutMs).toBeUndefined();
    calls[1]!.answer();
    await mixed;
  });

  it("refuses at once a caller whose deadline has already passed", async () => {
    const { calls, query } = controlledQuery();
    const batcher = new KeyBatcher(query, { maxBatch: 10, maxInFlight: 1 });
    const controller = new AbortController();
    controller.abort(new Error("too late"));
    await expect(batcher.load("a", { signal: controller.signal, timeoutMs: 0 })).rejects.toThrow("too late");
    await tick();
    expect(calls).toHaveLength(0);
  });
});
