import { describe, expect, it } from "vitest";
import { create, type DescMessage } from "@bufbuild/protobuf";
import { createContextValues, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { pino } from "pino";
import {
  GetTenantRequestSchema,
  LookupTenantRequestSchema,
  TenantSchema,
  TenantService,
  UpdateTenantRequestSchema,
  type Tenant,
} from "../../gen/tenancy/v1/tenant_pb.js";
import { createTenantCaching, kCachedTenant } from "../../src/cache/tenant-caching.js";

/**
 * The interceptor against a stand-in for the handler, with the cache made
 * live by hand and no listener: nothing but the interceptor itself can
 * invalidate, which is what the writing instance relies on.
 */
const ID = "6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11";

function setup() {
  const caching = createTenantCaching({ databaseUrl: "postgres://unused", capacity: 100, log: pino({ level: "silent" }) });
  caching.cache.setLive(true);
  let stored: Tenant = create(TenantSchema, { id: ID, domain: "a.example", etag: '"1"' });
  let handlerCalls = 0;
  /** The handler: answers the current row, unless the request was answered from the cache. */
  const handler = async (req: UnaryRequest, gate?: Promise<void>): Promise<UnaryResponse> => {
    const cached = req.contextValues.get(kCachedTenant);
    let message: unknown = cached;
    if (!cached) {
      handlerCalls += 1;
      if (req.method === TenantService.method.updateTenant) {
        const version = Number(stored.etag.replaceAll('"', "")) + 1;
        stored = create(TenantSchema, { ...stored, etag: `"${version}"` });
        message = stored;
      } else {
        const snapshot = stored; // what the database said when asked
        await gate;
        message = snapshot;
      }
    }
    return { stream: false, service: req.service, method: req.method, header: new Headers(), trailer: new Headers(), message } as UnaryResponse;
  };
  const call = async (schema: DescMessage, method: unknown, init: object, gate?: Promise<void>) => {
    const req = {
      stream: false,
      service: TenantService,
      method,
      requestMethod: "POST",
      url: "",
      signal: new AbortController().signal,
      header: new Headers(),
      contextValues: createContextValues(),
      message: create(schema as never, init as never),
    } as unknown as UnaryRequest;
    const res = (await caching.interceptor((r) => handler(r as UnaryRequest, gate))(req)) as UnaryResponse;
    return res.message as Tenant;
  };
  return {
    caching,
    calls: () => handlerCalls,
    get: (gate?: Promise<void>) => call(GetTenantRequestSchema, TenantService.method.getTenant, { id: ID }, gate),
    lookup: () => call(LookupTenantRequestSchema, TenantService.method.lookupTenant, { key: { case: "domain", value: "A.example." } }),
    update: () => call(UpdateTenantRequestSchema, TenantService.method.updateTenant, { tenant: { id: ID.toUpperCase() } }),
  };
}

describe("tenant cache interceptor", () => {
  it("answers a repeated read from the cache", async () => {
    const t = setup();
    await t.get();
    await t.lookup();
    expect(t.calls()).toBe(2);
    expect((await t.get()).etag).toBe('"1"');
    expect((await t.lookup()).etag).toBe('"1"');
    expect(t.calls()).toBe(2);
  });

  it("forgets the tenant a write names before the write's response leaves", async () => {
    const t = setup();
    await t.get();
    await t.lookup();
    const updated = await t.update();
    expect((await t.get()).etag).toBe(updated.etag);
    expect((await t.lookup()).etag).toBe(updated.etag);
  });

  it("does not keep what a read got if a write finished while it was running", async () => {
    const t = setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slowRead = t.get(gate); // reads version 1, answers later
    await new Promise((resolve) => setImmediate(resolve));
    const updated = await t.update();
    release();
    expect((await slowRead).etag).toBe('"1"'); // it began before the write: fine to answer
    expect((await t.get()).etag).toBe(updated.etag); // but it was not cached
    expect(t.caching.cache.stats.refusedFills).toBe(1);
  });
});
