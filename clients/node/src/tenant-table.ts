import { normalizeDomain } from "../../../src/tenants/domain-name.js";
import { Tenant_State, type Tenant } from "../../../gen/tenancy/v1/tenant_pb.js";

/**
 * The service's etag is the row's version, quoted (`"7"`); it grows with
 * every change, so it orders two states of one tenant. NaN when it is not in
 * that form: comparisons with NaN are false, so such a state is never taken
 * for an older one and the event (which comes in commit order) applies.
 */
export function versionOf(tenant: Tenant): number {
  const etag = tenant.etag;
  return etag.length > 2 && etag.charCodeAt(0) === 34 && etag.charCodeAt(etag.length - 1) === 34 ? Number(etag.slice(1, -1)) : NaN;
}

/** Names are unique regardless of case, and LookupTenant compares them trimmed and case-insensitively. */
export function nameKey(name: string): string {
  return name.trim().toLowerCase();
}

/**
 * One complete picture of the tenants, indexed the three ways they are
 * looked up. A deleted tenant stays in `byId` (GetTenant still returns it)
 * but leaves the domain and name indexes (LookupTenant no longer finds it),
 * as the service does; a purged one leaves all three.
 *
 * While a table is being loaded (a list, then the events since the list's
 * position) it holds only `byId`: the pages of a list are read at different
 * moments, so two of its tenants can claim one domain until the events in
 * between have been applied, and an index kept through that could end up
 * missing an entry. `index()` builds the domain and name indexes once the
 * table has caught up; from then on every event applies to a state that is
 * consistent with the service's at that event, so indexes are kept in step.
 */
export class TenantTable {
  readonly byId = new Map<string, Tenant>();
  private readonly domains = new Map<string, Tenant>();
  private readonly names = new Map<string, Tenant>();
  private indexed = false;

  /** Builds the domain and name indexes from the current states; maintained from then on. */
  index(): void {
    this.domains.clear();
    this.names.clear();
    for (const tenant of this.byId.values()) this.addToIndexes(tenant);
    this.indexed = true;
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * A lookup by host name, normalized as the service normalizes it (the same
   * code). Undefined for a name that is not a valid host name, as
   * LookupTenant answers INVALID_ARGUMENT for it.
   */
  byDomain(domain: string): Tenant | undefined {
    // Stored domains are normalized and normalization is idempotent, so a
    // string equal to a stored domain normalizes to itself: the common case
    // (a host name as clients send it) needs no normalization at all.
    const exact = this.domains.get(domain);
    if (exact !== undefined) return exact;
    const normalized = normalizeDomain(domain);
    return normalized.ok && normalized.domain !== domain ? this.domains.get(normalized.domain) : undefined;
  }

  byName(name: string): Tenant | undefined {
    return this.names.get(nameKey(name));
  }

  /**
   * Stores this state of the tenant unless the table already has the same
   * or a later one (an event replayed over a list that already saw its
   * effect must not move the tenant back). Returns the state it replaced,
   * `null` when it stored nothing.
   */
  upsert(tenant: Tenant): Tenant | undefined | null {
    const previous = this.byId.get(tenant.id);
    if (previous !== undefined && versionOf(tenant) <= versionOf(previous)) return null;
    this.byId.set(tenant.id, tenant);
    if (this.indexed) {
      if (previous !== undefined) this.removeFromIndexes(previous);
      this.addToIndexes(tenant);
    }
    return previous;
  }

  remove(id: string): Tenant | undefined {
    const previous = this.byId.get(id);
    if (previous === undefined) return undefined;
    this.byId.delete(id);
    if (this.indexed) this.removeFromIndexes(previous);
    return previous;
  }

  private addToIndexes(tenant: Tenant): void {
    if (tenant.state === Tenant_State.DELETED) return;
    this.domains.set(tenant.domain, tenant);
    this.names.set(nameKey(tenant.name), tenant);
  }

  /** Only the entries that still lead to this state of the tenant (never another tenant's). */
  private removeFromIndexes(tenant: Tenant): void {
    if (this.domains.get(tenant.domain) === tenant) this.domains.delete(tenant.domain);
    const key = nameKey(tenant.name);
    if (this.names.get(key) === tenant) this.names.delete(key);
  }
}
