import { isDeepStrictEqual } from "node:util";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { checkParams } from "../tenants/tenant.validation.js";
import type { EntityManager } from "@mikro-orm/postgresql";
import { invalidArgument, NotFoundError, PreconditionFailuresError, Violations } from "../common/errors.js";
import { isUuid } from "../common/ids.js";
import { decodePageToken, encodePageToken, pageSize, queryFingerprint } from "../common/pagination.js";
import { compileTenantFilter, FilterError, type CompiledFilter } from "../tenants/filter/index.js";
import { checkSchemaName, formatBinding, parseBinding, type SchemaVersionRef } from "./params-schema.binding.js";
import { keySegment, SchemaCompileError, type CompiledParamsSchema, type SchemaViolation } from "./params-schema.compiler.js";
import type { ParamsSchemaRegistry } from "./params-schema.registry.js";
import { ParamsSchemaRepository, type StoredParamsSchema } from "./params-schema.repository.js";
import { TenantBindingRepository, type BoundTenant } from "./tenant-binding.repository.js";
import { readEventSequence, tagTransaction, WriteReceipt } from "../events/event-context.js";
import type { Deadline } from "../common/deadline.js";
import { boundedTransaction, readTimeoutMs } from "../database/bounded.js";

export const PARAMS_SCHEMA_NOT_FOUND = "PARAMS_SCHEMA_NOT_FOUND";
export const PARAMS_SCHEMA_VIOLATIONS = "PARAMS_SCHEMA_VIOLATIONS";

/** Tenants one CheckParamsSchema page examines at most, so that a page's cost is bounded whatever the failures. */
export const CHECK_SCAN_LIMIT = 1000;
/** Tenants read (and locked) per statement while rebinding. */
const REBIND_CHUNK = 500;
/** Violations listed in a refused rebind's PreconditionFailure. */
const REBIND_LISTED_VIOLATIONS = 100;

export interface ParamsFailure {
  tenantId: string;
  tenantName: string;
  binding: SchemaVersionRef | null;
  violations: SchemaViolation[];
}

function notFound(ref: { name: string; version: number }): NotFoundError {
  const what = ref.version === 0 ? `no params schema is named ${ref.name}` : `no params schema ${formatBinding(ref)} is registered`;
  return new NotFoundError(PARAMS_SCHEMA_NOT_FOUND, what, { name: ref.name, version: String(ref.version) });
}

function compileFilter(filter: string): CompiledFilter | undefined {
  try {
    return compileTenantFilter(filter) ?? undefined;
  } catch (error) {
    if (error instanceof FilterError) throw invalidArgument("filter", error.message);
    throw error;
  }
}

/** A tenant's params path as a client writes it in a mask or filter: `params.theme.color`. */
/** Every `default` value of a document, with the path of the object that declares it. */
function defaultsIn(value: JsonValue, path: string): Array<{ path: string; value: JsonValue }> {
  if (value === null || typeof value !== "object") return [];
  if (Array.isArray(value)) return value.flatMap((item, i) => defaultsIn(item, `${path}[${i}]`));
  const own = Object.hasOwn(value, "default") ? [{ path, value: value.default! }] : [];
  return [...own, ...Object.entries(value).flatMap(([key, child]) => defaultsIn(child, path + keySegment(key)))];
}

export const paramsPath = (v: SchemaViolation) => `params${v.path}`;

/** The rules of params schemas; one instance per request, on the request's entity manager. */
export class ParamsSchemaService {
  /**
   * @param receipt who acts, for which request; writes record their event sequence there (src/events/).
   * @param deadline where the request's database work ends: transactions
   * get statement and lock timeouts that end there, reads are cancelled there.
   */
  constructor(
    private readonly em: EntityManager,
    private readonly registry: ParamsSchemaRegistry,
    private readonly receipt: WriteReceipt = new WriteReceipt(undefined),
    private readonly deadline?: Deadline,
  ) {}

  private readonly readTimeout = () => readTimeoutMs(this.deadline);

  /** Runs `work` in the current transaction (a request_id's), or in a new one bounded by the deadline. */
  private inTransaction<T>(work: (em: EntityManager) => Promise<T>): Promise<T> {
    return this.em.isInTransaction() ? work(this.em) : boundedTransaction(this.em, this.deadline, work);
  }

  /**
   * Registers the next version of `name`. Compiles first, so that a document
   * that cannot be used is INVALID_ARGUMENT (each problem at its place under
   * `schema`) and never stored. Resolves with the stored version and its
   * compiled form, which the caller hands to the registry once committed.
   */
  async create(request: { name: string; schema?: JsonObject }): Promise<{ stored: StoredParamsSchema; compiled: CompiledParamsSchema }> {
    const violations = new Violations();
    checkSchemaName(request.name, "name", violations);
    let compiled: CompiledParamsSchema | undefined;
    if (request.schema === undefined) violations.add("schema", "is required: a JSON Schema (draft 2020-12) object");
    else {
      try {
        compiled = this.registry.compiler.compile(request.schema);
      } catch (error) {
        if (!(error instanceof SchemaCompileError)) throw error;
        for (const v of error.violations) violations.add(`schema${v.path}`, v.description);
      }
      // Defaults end up in params as they are: they must be params that can be stored.
      if (compiled?.fillsDefaults) {
        for (const { path, value } of defaultsIn(request.schema, "schema")) checkParams({ default: value }, path, violations);
      }
    }
    violations.throwIfAny();
    const stored = await this.inTransaction(async (em) => {
      await tagTransaction(em, this.receipt);
      const inserted = await new ParamsSchemaRepository(em).insertNextVersion(request.name, request.schema!, this.receipt.actor ?? null);
      await readEventSequence(em, this.receipt);
      return inserted;
    });
    return { stored, compiled: compiled! };
  }

  async get(request: { name: string; version: number }): Promise<StoredParamsSchema> {
    const violations = new Violations();
    checkSchemaName(request.name, "name", violations);
    if (request.version < 0) violations.add("version", "must not be negative (0 means the latest)");
    violations.throwIfAny();
    const stored = await new ParamsSchemaRepository(this.em, this.readTimeout).find(request.name, request.version);
    if (!stored) throw notFound(request);
    return stored;
  }

  async list(request: { name: string; pageSize: number; pageToken: string; withSchema: boolean }): Promise<{ schemas: StoredParamsSchema[]; nextPageToken: string }> {
    const violations = new Violations();
    if (request.name !== "") checkSchemaName(request.name, "name", violations);
    violations.throwIfAny();
    const limit = pageSize(request.pageSize);
    const fingerprint = queryFingerprint(["params_schemas", request.name]);
    const cursor = decodePageToken(request.pageToken, fingerprint, 1);
    const after = cursor?.keys[0];
    const repository = new ParamsSchemaRepository(this.em, this.readTimeout);
    let rows: StoredParamsSchema[];
    if (request.name === "") {
      rows = await repository.listNames(after, limit + 1, request.withSchema);
    } else {
      const afterVersion = after === undefined ? 0 : Number(after);
      if (!Number.isInteger(afterVersion) || afterVersion < 0) throw invalidArgument("page_token", "is malformed: pass the next_page_token of a previous response");
      rows = await repository.listVersions(request.name, afterVersion, limit + 1, request.withSchema);
    }
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    const nextPageToken =
      rows.length > limit && last ? encodePageToken(fingerprint, { keys: [request.name === "" ? last.name : String(last.version)] }) : "";
    return { schemas: page, nextPageToken };
  }

  /** The version a check or rebind is about; NOT_FOUND when it is not registered. */
  private async target(ref: SchemaVersionRef, em: EntityManager): Promise<CompiledParamsSchema> {
    const compiled = await this.registry.find(ref, em);
    if (!compiled) throw notFound(ref);
    return compiled;
  }

  /** A dry run of a rebind: the failures among the next tenants, examined in id order. */
  async check(request: { paramsSchema: string; filter: string; pageSize: number; pageToken: string }): Promise<{
    failures: ParamsFailure[];
    nextPageToken: string;
    checkedCount: number;
  }> {
    const violations = new Violations();
    if (request.paramsSchema === "") violations.add("params_schema", 'is required: the version to check, as "<name>@<version>"');
    const ref = parseBinding(request.paramsSchema, "params_schema", violations);
    violations.throwIfAny();
    const limit = pageSize(request.pageSize);
    const where = compileFilter(request.filter);
    const fingerprint = queryFingerprint(["check_params_schema", request.paramsSchema, request.filter.trim()]);
    const cursor = decodePageToken(request.pageToken, fingerprint, 1);
    if (cursor && !isUuid(cursor.keys[0]!)) throw invalidArgument("page_token", "is malformed: pass the next_page_token of a previous response");
    const compiled = await this.target(ref!, this.em);
    const tenants = new TenantBindingRepository(this.em, this.readTimeout);
    const failures: ParamsFailure[] = [];
    let after = cursor?.keys[0];
    let checked = 0;
    let more = true;
    while (more && checked < CHECK_SCAN_LIMIT && failures.length < limit) {
      const want = Math.min(200, CHECK_SCAN_LIMIT - checked);
      const rows = await tenants.scan(where, after, want, false);
      more = rows.length === want;
      for (const tenant of rows) {
        after = tenant.id;
        checked += 1;
        const result = compiled.apply(tenant.params, { inPlace: true });
        if (result.violations.length > 0) {
          failures.push({ tenantId: tenant.id, tenantName: tenant.name, binding: tenant.binding, violations: result.violations });
          if (failures.length === limit) {
            more = more || tenant !== rows[rows.length - 1];
            break;
          }
        }
      }
    }
    return { failures, nextPageToken: more && after !== undefined ? encodePageToken(fingerprint, { keys: [after] }) : "", checkedCount: checked };
  }

  /**
   * Binds every matching tenant to the version, all or nothing, in one
   * transaction, in two passes over the tenants in id order, chunk by chunk:
   * the first locks and checks every one (and counts and lists the
   * failures: any failure ends it there); the second, over rows this
   * transaction already holds, writes. The writes come last because the
   * first write takes the change feed's lock (its trigger numbers the
   * events), which is held until the commit: waiting on another writer's
   * row lock while holding it could deadlock with that writer's own trigger.
   */
  async rebind(request: { filter: string; paramsSchema: string }): Promise<{ matched: number; rebound: number }> {
    const violations = new Violations();
    const ref = parseBinding(request.paramsSchema, "params_schema", violations);
    violations.throwIfAny();
    const where = compileFilter(request.filter);
    const binding = ref ?? null;
    return boundedTransaction(this.em, this.deadline, async (em) => {
      await tagTransaction(em, this.receipt);
      const compiled = ref ? await this.target(ref, em) : undefined;
      // Compared with what was read afterwards: never in place.
      const check = (tenant: BoundTenant) => (compiled ? compiled.apply(tenant.params) : { params: tenant.params, violations: [] });
      const tenants = new TenantBindingRepository(em);
      const chunks = async (lock: boolean, each: (rows: BoundTenant[]) => Promise<void>) => {
        let after: string | undefined;
        for (;;) {
          const rows = await tenants.scan(where, after, REBIND_CHUNK, lock);
          if (rows.length > 0) await each(rows);
          if (rows.length < REBIND_CHUNK) return;
          after = rows[rows.length - 1]!.id;
        }
      };

      const failures: ParamsFailure[] = [];
      let failedTenants = 0;
      let matched = 0;
      await chunks(true, async (rows) => {
        matched += rows.length;
        for (const tenant of rows) {
          const result = check(tenant);
          if (result.violations.length === 0) continue;
          failedTenants += 1;
          if (failures.length < REBIND_LISTED_VIOLATIONS) {
            failures.push({ tenantId: tenant.id, tenantName: tenant.name, binding: tenant.binding, violations: result.violations });
          }
        }
      });
      if (failedTenants > 0) throw refusedRebind(request.paramsSchema, failures, failedTenants);

      let rebound = 0;
      await chunks(false, async (rows) => {
        const changed: Array<{ id: string; params: JsonObject }> = [];
        for (const tenant of rows) {
          const result = check(tenant);
          // A tenant created since the first pass, and refused: all or nothing still holds.
          if (result.violations.length > 0) throw refusedRebind(request.paramsSchema, [{ tenantId: tenant.id, tenantName: tenant.name, binding: tenant.binding, violations: result.violations }], 1);
          if (!sameBinding(tenant.binding, binding) || !isDeepStrictEqual(result.params, tenant.params)) changed.push({ id: tenant.id, params: result.params });
        }
        await tenants.rebind(changed, binding);
        rebound += changed.length;
      });
      await readEventSequence(em, this.receipt);
      return { matched, rebound };
    });
  }
}

function sameBinding(a: SchemaVersionRef | null, b: SchemaVersionRef | null): boolean {
  return a === null || b === null ? a === b : a.name === b.name && a.version === b.version;
}

function refusedRebind(binding: string, failures: ParamsFailure[], failedTenants: number): PreconditionFailuresError {
  const listed = failures
    .flatMap((f) => f.violations.map((v) => ({ type: "PARAMS_SCHEMA", subject: `tenants/${f.tenantId}`, description: `${paramsPath(v)}: ${v.description}` })))
    .slice(0, REBIND_LISTED_VIOLATIONS);
  return new PreconditionFailuresError(
    PARAMS_SCHEMA_VIOLATIONS,
    `${failedTenants} tenant(s) have params that ${binding} refuses; nothing was changed (CheckParamsSchema lists them all)`,
    { params_schema: binding, failed_tenant_count: String(failedTenants) },
    listed,
  );
}
