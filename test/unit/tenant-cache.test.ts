import { describe, expect, it } from "vitest";
import { TenantCache } from "../../src/cache/tenant-cache.js";

function liveCache(capacity = 100) {
  const cache = new TenantCache<string>(capacity);
  cache.setLive(true);
  return cache;
}

describe("TenantCache", () => {
  it("serves nothing until it is live, and forgets everything when it stops being live", () => {
    const cache = new TenantCache<string>(10);
    expect(cache.set("i:1", "1", "v1", cache.token())).toBe(false);
    expect(cache.get("i:1")).toBeUndefined();
    expect(cache.stats.bypassed).toBe(1);
    cache.setLive(true);
    expect(cache.set("i:1", "1", "v1", cache.token())).toBe(true);
    expect(cache.get("i:1")).toBe("v1");
    cache.setLive(false);
    cache.setLive(true);
    expect(cache.get("i:1")).toBeUndefined();
  });

  it("stops serving when the listener's proof of life is overdue", () => {
    const cache = new TenantCache<string>(10);
    cache.setLive(true, Date.now() - 1);
    expect(cache.usable).toBe(false);
    cache.extendLive(Date.now() + 60_000);
    expect(cache.usable).toBe(true);
  });

  it("drops every key of a tenant on invalidation", () => {
    const cache = liveCache();
    cache.set("i:1", "1", "v1", cache.token());
    cache.set("d:a.example", "1", "v1", cache.token());
    cache.set("i:2", "2", "v2", cache.token());
    cache.invalidate("1");
    expect(cache.get("i:1")).toBeUndefined();
    expect(cache.get("d:a.example")).toBeUndefined();
    expect(cache.get("i:2")).toBe("v2");
  });

  it("refuses a fill that started before the tenant was invalidated or the cache cleared", () => {
    const cache = liveCache();
    const early = cache.token();
    cache.invalidate("1");
    expect(cache.set("i:1", "1", "old", early)).toBe(false);
    expect(cache.set("i:2", "2", "other tenant", early)).toBe(true);
    expect(cache.set("i:1", "1", "new", cache.token())).toBe(true);
    const beforeClear = cache.token();
    cache.clear();
    expect(cache.set("i:3", "3", "old", beforeClear)).toBe(false);
    expect(cache.stats.refusedFills).toBe(2);
  });

  it("refuses old fills once it no longer remembers the invalidations they raced", () => {
    const cache = liveCache();
    const early = cache.token();
    for (let i = 0; i < 5000; i++) cache.invalidate(`x${i}`);
    expect(cache.set("i:1", "1", "maybe old", early)).toBe(false);
  });

  it("keeps at most `capacity` keys, evicting the least recently used", () => {
    const cache = liveCache(3);
    for (const id of ["1", "2", "3"]) cache.set(`i:${id}`, id, `v${id}`, cache.token());
    expect(cache.get("i:1")).toBe("v1"); // 1 is now the most recent
    cache.set("i:4", "4", "v4", cache.token());
    expect(cache.size).toBe(3);
    expect(cache.get("i:2")).toBeUndefined();
    expect(cache.get("i:1")).toBe("v1");
    expect(cache.stats.evictions).toBe(1);
  });

  it("is off with capacity 0", () => {
    const cache = new TenantCache<string>(0);
    cache.setLive(true);
    expect(cache.set("i:1", "1", "v1", cache.token())).toBe(false);
    expect(cache.get("i:1")).toBeUndefined();
  });
});
