import { createContextKey, type ContextValues, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { Counter, Gauge, type Registry } from "prom-client";
import { TenantService, type Tenant as TenantMessage } from "../../gen/tenancy/v1/tenant_pb.js";
import { isUuid } from "../common/ids.js";
import type { Logger } from "../logger.js";
import { normalizeDomain } from "../tenants/domain-name.js";
import { TenantCache } from "./tenant-cache.js";
import { TenantInvalidationListener, type InvalidationListenerOptions } from "./tenant-invalidation.js";

export interface TenantCachingOptions {
  databaseUrl: string;
  /** Most keys held (a tenant takes one per id and one per domain it was looked up by); 0 disables. */
  capacity: number;
  log: Logger;
  registry?: Registry;
  listener?: Pick<InvalidationListenerOptions, "heartbeatMs" | "heartbeatTimeoutMs" | "reconnectMinMs" | "reconnectMaxMs">;
}

export interface TenantCaching {
  cache: TenantCache<TenantMessage>;
  /** Undefined when the cache is disabled. */
  listener: TenantInvalidationListener | undefined;
  /**
   * Answers GetTenant and LookupTenant by domain from the cache (with the
   * implementation wrapped by `answeredFromCache`); invalidates after writes.
   */
  interceptor: Interceptor;
  start(): void;
  stop(): Promise<void>;
}

/**
 * Set by the cache interceptor when the answer is known: the TenantService
 * implementation (wrapped with `answeredFromCache`) returns it instead of
 * asking the database, and the gRPC fast path may reuse its encoding. The
 * answer goes through the implementation, not straight out of the
 * interceptor, so that the protocol's response headers stay as the protocol
 * set them.
 */
export const kCachedTenant = createContextKey<TenantMessage | undefined>(undefined, {
  description: "the tenant cache's answer to this request",
});

/** Whether this request is answered from the tenant cache (it needs no database). */
export function isAnsweredFromCache(values: ContextValues): boolean {
  return values.get(kCachedTenant) !== undefined;
}

/** Wraps the TenantService implementation so that cache hits skip the handler. */
export function answeredFromCache(impl: ServiceImpl<typeof TenantService>): ServiceImpl<typeof TenantService> {
  return {
    ...impl,
    getTenant: (req, ctx) => ctx.values.get(kCachedTenant) ?? impl.getTenant(req, ctx),
    lookupTenant: (req, ctx) => ctx.values.get(kCachedTenant) ?? impl.lookupTenant(req, ctx),
  };
}

const methods = TenantService.method;
/** TenantService methods that change no existing tenant (CreateTenant makes a new id, never cached). */
const changesNothing = new Set<unknown>([methods.getTenant, methods.lookupTenant, methods.listTenants, methods.createTenant]);

/** The cache key of a read, or undefined when the request is not answered from the cache. */
function keyOf(method: unknown, message: unknown): string | undefined {
  if (method === methods.getTenant) {
    const id = (message as { id: string }).id;
    return isUuid(id) ? `i:${id.toLowerCase()}` : undefined;
  }
  if (method === methods.lookupTenant) {
    const key = (message as { key: { case: string | undefined; value?: unknown } }).key;
    if (key.case !== "domain") return undefined; // by name: rare, not cached
    const normalized = normalizeDomain(key.value as string);
    return normalized.ok ? `d:${normalized.domain}` : undefined;
  }
  return undefined;
}

/** The tenant a write names, when it names one. */
function writtenId(message: unknown): string | undefined {
  const m = message as { id?: unknown; tenant?: { id?: unknown } };
  const id = typeof m.id === "string" ? m.id : typeof m.tenant?.id === "string" ? m.tenant.id : undefined;
  return id !== undefined && isUuid(id) ? id.toLowerCase() : undefined;
}

/**
 * The tenant cache of one server: the cache, its invalidation listener and
 * the interceptor that uses them. See tenant-cache.ts for the rules.
 *
 * The interceptor sits after metrics, logging, error mapping and
 * authentication with authorization (see server.ts), so a hit is logged,
 * counted and authorized like any RPC; it only skips the handler and the
 * database. What it caches is the
 * handler's own answer to the same question (GetTenant by id, LookupTenant by
 * normalized domain), so the handler's rules, such as deleted tenants being
 * hidden from LookupTenant, hold for hits too; errors are never cached.
 *
 * Freshness: every change of a tenant row notifies all instances in its
 * transaction (a trigger); the instance that made the change through an RPC
 * also drops the tenant from its own cache before the response leaves, so
 * it never answers with the old version after its own write returned.
 */
export function createTenantCaching(options: TenantCachingOptions): TenantCaching {
  const cache = new TenantCache<TenantMessage>(options.capacity);
  const listener = cache.enabled
    ? new TenantInvalidationListener({ ...options.listener, databaseUrl: options.databaseUrl, cache, log: options.log })
    : undefined;
  if (options.registry) registerMetrics(cache, options.registry);

  const interceptor: Interceptor = (next) => async (req) => {
    if (!cache.enabled || req.stream || req.service !== TenantService) return next(req);
    if (changesNothing.has(req.method)) {
      const key = keyOf(req.method, req.message);
      if (key === undefined) return next(req);
      const hit = cache.get(key);
      if (hit !== undefined) {
        req.contextValues.set(kCachedTenant, hit);
        return next(req);
      }
      const token = cache.token();
      const res = await next(req);
      if (!res.stream) {
        const tenant = res.message as TenantMessage;
        if (tenant.id) cache.set(key, tenant.id, tenant, token);
      }
      return res;
    }
    // Any other TenantService method may change a tenant: once it has
    // finished (committed or not), forget what it named, or everything if
    // it names nothing.
    try {
      return await next(req);
    } finally {
      const id = writtenId(req.message);
      if (id) cache.invalidate(id);
      else cache.clear();
    }
  };

  return {
    cache,
    listener,
    interceptor,
    start: () => listener?.start(),
    stop: async () => {
      await listener?.stop();
    },
  };
}

function registerMetrics(cache: TenantCache<unknown>, registry: Registry): void {
  const reported = { hit: 0, miss: 0, bypass: 0 };
  new Counter({
    name: "tenancy_tenant_cache_requests_total",
    help: "GetTenant and LookupTenant-by-domain reads by cache result: hit, miss, or bypass (invalidations not being received)",
    labelNames: ["result"],
    registers: [registry],
    collect() {
      const now = { hit: cache.stats.hits, miss: cache.stats.misses, bypass: cache.stats.bypassed };
      for (const result of ["hit", "miss", "bypass"] as const) {
        this.inc({ result }, now[result] - reported[result]);
        reported[result] = now[result];
      }
    },
  });
  const invalidations = { value: 0 };
  new Counter({
    name: "tenancy_tenant_cache_invalidations_total",
    help: "tenants invalidated in the cache (notifications and own writes)",
    registers: [registry],
    collect() {
      this.inc(cache.stats.invalidations - invalidations.value);
      invalidations.value = cache.stats.invalidations;
    },
  });
  new Gauge({
    name: "tenancy_tenant_cache_entries",
    help: "keys held by the tenant cache",
    registers: [registry],
    collect() {
      this.set(cache.size);
    },
  });
  new Gauge({
    name: "tenancy_tenant_cache_live",
    help: "1 while the tenant cache receives invalidations and serves, 0 while it is bypassed",
    registers: [registry],
    collect() {
      this.set(cache.enabled && cache.usable ? 1 : 0);
    },
  });
}
