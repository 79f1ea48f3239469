import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import type { EntityManager } from "@mikro-orm/postgresql";
import { ForeignKeyConstraintViolationException } from "@mikro-orm/core";
import { AbortedError, FailedPreconditionError, invalidArgument, NotFoundError, Violations } from "../common/errors.js";
import { isUuid, requireId } from "../common/ids.js";
import { cutPage, decodePageToken, pageSize, queryFingerprint } from "../common/pagination.js";
import { MembershipRepository } from "../memberships/membership.repository.js";
import type { Tenant } from "./tenant.entity.js";
import { ETAG_MISMATCH, TENANT_DELETED, TENANT_HAS_MEMBERSHIPS, TENANT_NOT_DELETED, TENANT_NOT_FOUND } from "../common/reasons.js";
import { TenantRepository, type SortColumn } from "./tenant.repository.js";
import { checkDomain, checkName, checkParams, couldBeStoredName } from "./tenant.validation.js";
import { applyParamsKey, parseTenantMask } from "./tenant.update-mask.js";
import { tenantEtag } from "./tenant.mapper.js";
import type { TenantLoader } from "./tenant.loader.js";
import type { Caller } from "../database/batcher.js";
import { boundedTransaction, readTimeoutMs } from "../database/bounded.js";
import type { Deadline } from "../common/deadline.js";
import { compileTenantFilter, FilterError } from "./filter/index.js";
import { readEventSequence, tagTransaction, WriteReceipt } from "../events/event-context.js";
import type { ParamsSchemaRegistry } from "../params-schemas/params-schema.registry.js";
import { parseBinding, type SchemaVersionRef } from "../params-schemas/params-schema.binding.js";

/** A state a client may ask for; DELETED is reached only through delete. */
export type RequestedState = "ACTIVE" | "SUSPENDED" | undefined;

export interface NewTenant {
  name: string;
  domain: string;
  params?: JsonObject;
  state?: RequestedState;
  /** `name@version`; empty or absent for free-form params. */
  paramsSchema?: string;
}

export interface TenantRules {
  /** How long a deleted tenant can be restored before it is purged. */
  retentionMs: number;
}

export const defaultTenantRules: TenantRules = { retentionMs: 30 * 24 * 3600 * 1000 };

export interface TenantChanges {
  id: string;
  name: string;
  domain: string;
  params: JsonObject | undefined;
  /** Undefined when the request leaves the state unspecified. */
  state: RequestedState | "DELETED";
  etag: string;
  /** `name@version`, or empty. */
  paramsSchema: string;
  /** `update_mask.paths`; empty means every field that the request sets. */
  paths: readonly string[];
}

export interface TenantPage {
  tenants: Tenant[];
  nextPageToken: string;
  totalSize: number;
}

function checkEtag(tenant: Tenant, etag: string): void {
  if (etag !== "" && etag !== tenantEtag(tenant)) {
    throw new AbortedError(ETAG_MISMATCH, "the tenant was changed since the etag was read: read it again and retry", {
      current_etag: tenantEtag(tenant),
    });
  }
}

// A Map, not an object: a field named after an Object.prototype member must not match.
const sortable = new Map<string, Omit<SortColumn, "desc">>([
  ["name", { column: "name", timestamp: false }],
  ["domain", { column: "domain", timestamp: false }],
  ["create_time", { column: "created_at", timestamp: true }],
  ["update_time", { column: "updated_at", timestamp: true }],
]);

function parseOrderBy(orderBy: string): SortColumn[] {
  if (orderBy.trim() === "") return [{ column: "created_at", timestamp: true, desc: false }];
  const seen = new Set<string>();
  return orderBy.split(",").map((part) => {
    const words = part.trim().split(/\s+/);
    const [field, direction, ...rest] = words;
    const column = field === undefined ? undefined : sortable.get(field);
    if (!column || rest.length > 0 || (direction !== undefined && direction !== "desc" && direction !== "asc")) {
      throw invalidArgument(
        "order_by",
        `"${part.trim()}" is not a valid ordering: use name, domain, create_time or update_time, each optionally followed by " desc"`,
      );
    }
    if (seen.has(field!)) throw invalidArgument("order_by", `"${field}" appears more than once`);
    seen.add(field!);
    return { ...column, desc: direction === "desc" };
  });
}

/** Cursor values come from clients: check them before they reach SQL. */
function checkCursor(order: SortColumn[], keys: string[]): void {
  const ok = keys.every((key, i) => {
    if (i === order.length) return isUuid(key);
    if (order[i]!.timestamp) return /^-?\d{1,17}$/.test(key);
    return key.length <= 255 && !key.includes("\u0000");
  });
  if (!ok) throw invalidArgument("page_token", "is malformed: pass the next_page_token of a previous response");
}

const PARAMS_FIELDS = { params: "tenant.params", binding: "tenant.params_schema" };

/**
 * A new tenant from a CreateTenant request, validated (INVALID_ARGUMENT with
 * every violation) and normalized; `actor` (a UUID, or undefined when
 * anonymous) is recorded as its creator. Bound to a params schema, its
 * params are validated against it and get the schema's defaults; `em` reads
 * a schema that this process has not compiled yet (in the caller's
 * transaction).
 */
export async function newTenant(
  input: NewTenant,
  schemas: ParamsSchemaRegistry,
  options: { actor?: string; em?: EntityManager } = {},
): Promise<Tenant> {
  const violations = new Violations();
  const name = checkName(input.name, "tenant.name", violations);
  const domain = checkDomain(input.domain, "tenant.domain", violations);
  let params = input.params ?? {};
  checkParams(params, "tenant.params", violations);
  const binding = parseBinding(input.paramsSchema ?? "", PARAMS_FIELDS.binding, violations);
  // Only params that are valid JSON for the database are given to the schema.
  if (binding && !violations.has(PARAMS_FIELDS.params)) {
    // The request's own params: the defaults are written into them.
    params = await schemas.apply(binding, params, PARAMS_FIELDS, violations, { em: options.em, inPlace: true });
  }
  violations.throwIfAny();
  const now = new Date();
  return {
    id: randomUUID(),
    name,
    domain,
    params,
    createdAt: now,
    updatedAt: now,
    version: 1,
    state: input.state ?? "ACTIVE",
    deletedAt: null,
    purgeAt: null,
    createdBy: options.actor ?? null,
    paramsSchemaName: binding?.name ?? null,
    paramsSchemaVersion: binding?.version ?? null,
  };
}

/**
 * GetTenant and LookupTenant by domain, the resolve path that every request
 * of the platform starts with: read through the shared, coalescing loader,
 * without an entity manager of the request's own.
 */
export class TenantReads {
  constructor(private readonly loader: TenantLoader) {}

  async get(id: string, caller?: Caller): Promise<Tenant> {
    const tenant = await this.loader.byId(requireId(id, "id"), caller);
    if (!tenant) throw new NotFoundError(TENANT_NOT_FOUND, `tenant ${id} not found`, { id });
    return tenant;
  }

  /** Deleted tenants are not found by domain (AIP-164). */
  async lookupByDomain(raw: string, caller?: Caller): Promise<Tenant> {
    const violations = new Violations();
    const domain = checkDomain(raw, "domain", violations);
    violations.throwIfAny();
    const tenant = await this.loader.byDomain(domain, caller);
    if (!tenant) throw new NotFoundError(TENANT_NOT_FOUND, `no tenant has the domain ${domain}`, { domain });
    return tenant;
  }
}

/**
 * The rules of tenants; one instance per request, on the request's entity
 * manager. Its database work ends at the request's `deadline`: writes run
 * in a bounded transaction, reads are cancelled when it passes.
 */
export class TenantService {
  /**
   * @param receipt who acts and for which request; every write records its
   * event sequence there (see src/events/).
   * @param deadline where the database work ends.
   */
  constructor(
    private readonly em: EntityManager,
    private readonly schemas: ParamsSchemaRegistry,
    private readonly rules: TenantRules = defaultTenantRules,
    private readonly receipt: WriteReceipt = new WriteReceipt(undefined),
    private readonly deadline?: Deadline,
  ) {}

  /**
   * Inserts in a transaction (the request's own, a request_id's, bounded by
   * the deadline); else see TenantInserter.
   */
  async create(input: NewTenant): Promise<Tenant> {
    const tenant = await newTenant(input, this.schemas, { actor: this.receipt.actor, em: this.em });
    await this.inTransaction(async (em) => {
      await new TenantRepository(em).insert(tenant);
      await readEventSequence(em, this.receipt);
    });
    return tenant;
  }

  /** Runs `work` in the current transaction, or in a new one bounded by the deadline. */
  private inTransaction<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.em.isInTransaction() ? work(this.em) : boundedTransaction(this.em, this.deadline, work);
  }

  /**
   * A write transaction, bounded by the deadline: tagged for the change feed
   * first, its event sequence read last.
   */
  private write<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    return boundedTransaction(this.em, this.deadline, async (em) => {
      await tagTransaction(em, this.receipt);
      const result = await work(em);
      await readEventSequence(em, this.receipt);
      return result;
    });
  }

  lookupByName(raw: string): Promise<Tenant> {
    const name = raw.trim();
    if (name === "") throw invalidArgument("name", "must not be empty");
    if (!couldBeStoredName(name)) throw new NotFoundError(TENANT_NOT_FOUND, "no tenant has this name");
    return new TenantRepository(this.em).findByName(name, readTimeoutMs(this.deadline));
  }

  async list(request: {
    pageSize: number;
    pageToken: string;
    filter: string;
    orderBy: string;
    showDeleted: boolean;
  }, memberOf?: string): Promise<TenantPage> {
    const limit = pageSize(request.pageSize);
    const order = parseOrderBy(request.orderBy);
    let where;
    try {
      where = compileTenantFilter(request.filter) ?? undefined;
    } catch (error) {
      if (error instanceof FilterError) throw invalidArgument("filter", error.message);
      throw error;
    }
    const fingerprint = queryFingerprint([request.filter.trim(), order, request.showDeleted]);
    const cursor = decodePageToken(request.pageToken, fingerprint, order.length + 1);
    if (cursor) checkCursor(order, cursor.keys);
    // memberOf: only the tenants this user belongs to (a caller who is not a
    // platform administrator; see src/auth/policy.ts). Applies to the count too.
    const filter = { where, showDeleted: request.showDeleted, memberOf };
    const tenants = new TenantRepository(this.em);
    const timeoutMs = readTimeoutMs(this.deadline);
    const [rows, totalSize] = await Promise.all([
      tenants.list({ ...filter, order, after: cursor?.keys, limit: limit + 1, timeoutMs }),
      tenants.count(filter, timeoutMs),
    ]);
    const page = cutPage(rows, limit, fingerprint);
    return { tenants: page.rows.map((row) => row.tenant), nextPageToken: page.nextPageToken, totalSize };
  }

  async update(changes: TenantChanges): Promise<Tenant> {
    const id = requireId(changes.id, "tenant.id");
    const violations = new Violations();
    const paths =
      changes.paths.length > 0
        ? parseTenantMask(changes.paths, violations)
        : [
            ...(changes.name !== "" ? [{ field: "name" as const }] : []),
            ...(changes.domain !== "" ? [{ field: "domain" as const }] : []),
            ...(changes.params !== undefined ? [{ field: "params" as const }] : []),
            ...(changes.state !== undefined ? [{ field: "state" as const }] : []),
            ...(changes.paramsSchema !== "" ? [{ field: "params_schema" as const }] : []),
          ];
    let name: string | undefined;
    let domain: string | undefined;
    // undefined: the binding stays; null: free-form.
    let binding: SchemaVersionRef | null | undefined;
    for (const path of paths) {
      if (path.field === "params_schema") binding = parseBinding(changes.paramsSchema, PARAMS_FIELDS.binding, violations);
      if (path.field === "name") name = checkName(changes.name, "tenant.name", violations);
      if (path.field === "domain") domain = checkDomain(changes.domain, "tenant.domain", violations);
      if (path.field === "state" && changes.state !== "ACTIVE" && changes.state !== "SUSPENDED") {
        violations.add("tenant.state", "must be ACTIVE or SUSPENDED (use DeleteTenant to delete)");
      }
    }
    if (changes.params !== undefined) checkParams(changes.params, "tenant.params", violations);
    violations.throwIfAny();
    if (paths.length === 0) throw invalidArgument("update_mask", "names no field to update, and the request sets none");

    // The row lock serializes concurrent updates of one tenant, so that two
    // clients changing different params keys both keep their change.
    return this.write(async (em) => {
      const repository = new TenantRepository(em);
      const tenant = await repository.findForUpdate(id);
      checkEtag(tenant, changes.etag);
      if (tenant.state === "DELETED") throw deleted(tenant);
      let params = (tenant.params ?? {}) as JsonObject;
      // Whether params are checked against the binding: they or the binding change.
      let checkParamsSchema = false;
      for (const path of paths) {
        if (path.field === "state") tenant.state = changes.state as "ACTIVE" | "SUSPENDED";
        else if (path.field === "name") tenant.name = name!;
        else if (path.field === "domain") tenant.domain = domain!;
        else if (path.field === "params_schema") checkParamsSchema = true;
        else if (path.field === "params.key") {
          params = applyParamsKey(params, path.keys, changes.params);
          checkParamsSchema = true;
        } else {
          params = changes.params ?? {};
          checkParamsSchema = true;
        }
      }
      const violationsAfter = new Violations();
      checkParams(params, "tenant.params", violationsAfter);
      if (binding !== undefined) {
        tenant.paramsSchemaName = binding?.name ?? null;
        tenant.paramsSchemaVersion = binding?.version ?? null;
      }
      // A rename or a suspension leaves params as they are, valid or not.
      const bound = tenant.paramsSchemaName === null ? null : { name: tenant.paramsSchemaName, version: tenant.paramsSchemaVersion! };
      if (checkParamsSchema && bound && violationsAfter.empty) {
        // Copied: parts of params may still be the loaded entity's.
        params = await this.schemas.apply(bound, params, PARAMS_FIELDS, violationsAfter, { em });
      }
      violationsAfter.throwIfAny();
      tenant.params = params;
      tenant.updatedAt = new Date();
      await repository.flush();
      return tenant;
    });
  }

  /** Soft delete (AIP-164): the row stays, hidden, until it is purged. */
  async delete(request: { id: string; etag: string; force: boolean }): Promise<Tenant> {
    const id = requireId(request.id, "id");
    try {
      return await this.write(async (em) => {
        const tenant = await new TenantRepository(em).findForUpdate(id);
        checkEtag(tenant, request.etag);
        if (tenant.state === "DELETED") throw deleted(tenant);
        const memberships = new MembershipRepository(em);
        if (request.force) {
          await memberships.deleteOfTenant(id);
        } else {
          const count = await memberships.count({ tenantId: id });
          if (count > 0) throw hasMemberships(count);
        }
        const now = new Date();
        tenant.state = "DELETED";
        tenant.deletedAt = now;
        tenant.purgeAt = new Date(now.getTime() + this.rules.retentionMs);
        tenant.updatedAt = now;
        await em.flush();
        return tenant;
      });
    } catch (error) {
      // A membership created between the count and the delete.
      if (error instanceof ForeignKeyConstraintViolationException) throw hasMemberships();
      throw error;
    }
  }

  async undelete(request: { id: string; etag: string }): Promise<Tenant> {
    const id = requireId(request.id, "id");
    return this.write(async (em) => {
      const tenant = await new TenantRepository(em).findForUpdate(id);
      checkEtag(tenant, request.etag);
      if (tenant.state !== "DELETED") throw notDeleted(tenant);
      tenant.state = "ACTIVE";
      tenant.deletedAt = null;
      tenant.purgeAt = null;
      tenant.updatedAt = new Date();
      await em.flush();
      return tenant;
    });
  }

  /** Removes a deleted tenant and whatever memberships it still has, for good. */
  async purge(request: { id: string; etag: string }): Promise<void> {
    const id = requireId(request.id, "id");
    await this.write(async (em) => {
      const tenants = new TenantRepository(em);
      const tenant = await tenants.findForUpdate(id);
      checkEtag(tenant, request.etag);
      if (tenant.state !== "DELETED") throw notDeleted(tenant);
      await new MembershipRepository(em).deleteOfTenant(id);
      await tenants.delete(id);
    });
  }
}

function deleted(tenant: Tenant): FailedPreconditionError {
  return new FailedPreconditionError(TENANT_DELETED, "the tenant is deleted: restore it with UndeleteTenant first", {
    id: tenant.id,
    purge_time: tenant.purgeAt?.toISOString() ?? "",
  });
}

function notDeleted(tenant: Tenant): FailedPreconditionError {
  return new FailedPreconditionError(TENANT_NOT_DELETED, `the tenant is ${tenant.state.toLowerCase()}, not deleted`, {
    id: tenant.id,
  });
}

function hasMemberships(count?: number): FailedPreconditionError {
  return new FailedPreconditionError(
    TENANT_HAS_MEMBERSHIPS,
    "the tenant still has memberships: delete them first, or set force to delete them with the tenant",
    count === undefined ? {} : { membership_count: String(count) },
  );
}
