/**
 * The benchmark's data set and operations, shared by the orchestrator
 * (bench/run.ts) and the load generator (bench/load.ts).
 *
 * Seeded rows have deterministic keys, so that the load generator (and
 * pgbench) can pick random existing ones without reading them first:
 * tenant i (1..N) has id md5('bench-tenant-i')::uuid and domain
 * tenant-i.bench.example; user u (0..U-1) has id md5('bench-user-u')::uuid.
 */
import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs";
import type { JsonObject } from "@bufbuild/protobuf";

export function md5Uuid(text: string): string {
  const h = createHash("md5").update(text).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const tenantId = (i: number) => md5Uuid(`bench-tenant-${i}`);
export const tenantDomain = (i: number) => `tenant-${i}.bench.example`;
export const userId = (u: number) => md5Uuid(`bench-user-${u}`);

/** Memberships per seeded user: U = memberships / MEMBERSHIPS_PER_USER users. */
export const MEMBERSHIPS_PER_USER = 4;

export interface DataSet {
  tenants: number;
  memberships: number;
}

export const users = (data: DataSet) => Math.max(1, Math.floor(data.memberships / MEMBERSHIPS_PER_USER));

/** Tenant configuration of a few hundred bytes, as in the seed. */
export function tenantParams(i: number): JsonObject {
  const plans = ["free", "pro", "enterprise"];
  const regions = ["eu-west-1", "us-east-1", "ap-south-1"];
  return {
    plan: plans[i % 3]!,
    seats: 5 + (i % 500),
    region: regions[i % 3]!,
    features: ["sso", "audit-log", "api-access", "custom-domain"],
    limits: { projects: 10 + (i % 90), storageGb: 100 + (i % 900), apiCallsPerMinute: 600 },
    branding: { primaryColor: "#1a73e8", logoUrl: `https://cdn.bench.example/logos/${i}.png`, displayName: `Bench Tenant ${i}` },
    contact: { email: `admin@tenant-${i}.bench.example`, phone: "+1-555-0100" },
  };
}

/** The same params, built by PostgreSQL for the seed. */
export const tenantParamsSql = (i: string) => `jsonb_build_object(
  'plan', (ARRAY['free','pro','enterprise'])[1 + ${i} % 3],
  'seats', 5 + ${i} % 500,
  'region', (ARRAY['eu-west-1','us-east-1','ap-south-1'])[1 + ${i} % 3],
  'features', jsonb_build_array('sso','audit-log','api-access','custom-domain'),
  'limits', jsonb_build_object('projects', 10 + ${i} % 90, 'storageGb', 100 + ${i} % 900, 'apiCallsPerMinute', 600),
  'branding', jsonb_build_object('primaryColor', '#1a73e8', 'logoUrl', 'https://cdn.bench.example/logos/' || ${i} || '.png', 'displayName', 'Bench Tenant ' || ${i}),
  'contact', jsonb_build_object('email', 'admin@tenant-' || ${i} || '.bench.example', 'phone', '+1-555-0100'))`;

/**
 * The params schema of the write benchmark with validation: the learning
 * program example (20 properties, two nested objects), seeded as version 1.
 */
export const PROGRAM_SCHEMA_NAME = "learning-program";
export const PROGRAM_BINDING = `${PROGRAM_SCHEMA_NAME}@1`;
export const programSchema = (): JsonObject =>
  JSON.parse(fs.readFileSync(new URL("../examples/params-schemas/learning-program.schema.json", import.meta.url), "utf8")) as JsonObject;

/**
 * Settings of a learning program that the schema accepts, every property
 * set (so that no default is added and both CreateTenant scenarios store the
 * same bytes): about 900 bytes of JSON.
 */
export function programParams(i: number): JsonObject {
  return {
    plan: (["free", "pro", "enterprise"] as const)[i % 3]!,
    language: (["en", "pt-BR", "de"] as const)[i % 3]!,
    timezone: "Europe/Lisbon",
    seats: 10 + (i % 5000),
    start_date: "2026-09-01",
    end_date: "2027-06-30",
    support_email: `help@program-${i}.bench.example`,
    catalog_url: `https://program-${i}.bench.example/catalog`,
    certificates: i % 2 === 0,
    session_minutes: 45 + (i % 60),
    max_courses: 20 + (i % 80),
    features: ["forums", "quizzes", "badges"],
    tags: ["stem", `cohort-${i % 12}`],
    enrollment: { open: true, approval: "domain", allowed_domains: [`program-${i}.bench.example`, "partner.example"], waitlist: 50 },
    grading: { scale: "percent", pass_mark: 60 + (i % 30), retakes: 2 },
    contact: { phone: "+1 555 0100" },
    fallback_languages: ["en"],
    theme: "white-label@1",
    analytics: true,
    external_id: `crm-${i}`,
  };
}

/** The ListTenants filter of the benchmark (a third of the tenants match). */
export const LIST_FILTER = 'params.plan = "pro"';

/**
 * The direct-SQL baseline: for each operation, the statements the service
 * sends for it (bench/run.ts compares them with what the service really
 * sends, see `sqlCheck` in the results), with bind parameters instead of
 * inlined literals. Reads are the service's statements; writes are the one
 * INSERT or UPDATE that a hand-written implementation needs (the service
 * adds BEGIN/COMMIT and its own checks around them: that is overhead the
 * ratio is meant to show).
 */
/**
 * What the service sends instead of the baseline's statement where it
 * coalesces concurrent reads (src/tenants/tenant.loader.ts): the same
 * indexed lookup for every key of a batch at once. The baseline keeps the
 * one-row statement per request: that is the ceiling the ratio compares with.
 */
export const coalescedSql: Partial<Record<keyof typeof baselineSql, string>> = {
  get: `SELECT * FROM "Tenants" WHERE tenant_id = ANY($1::uuid[])`,
  lookup: `SELECT * FROM "Tenants" WHERE domain = ANY($1::text[]) AND state <> 'DELETED'`,
};

export const baselineSql = {
  get: [`SELECT * FROM "Tenants" WHERE tenant_id = $1::uuid LIMIT 1`],
  lookup: [`SELECT * FROM "Tenants" WHERE domain = $1 AND state <> 'DELETED' LIMIT 1`],
  list: [
    `SELECT *, (extract(epoch FROM created_at) * 1000000)::bigint::text AS "cursor_created_at" FROM "Tenants" WHERE state <> 'DELETED' AND (coalesce(jsonb_typeof(params #> $1::text[]) = 'string' AND (params #>> $2::text[]) = $3::text, false)) ORDER BY created_at ASC, tenant_id ASC LIMIT 51`,
    `SELECT count(*) AS count FROM "Tenants" WHERE state <> 'DELETED' AND (coalesce(jsonb_typeof(params #> $1::text[]) = 'string' AND (params #>> $2::text[]) = $3::text, false))`,
  ],
  listMemberships: [
    `SELECT *, (extract(epoch FROM "createdAt") * 1000000)::bigint::text AS cursor_created FROM "UserTenantMapping" WHERE "userId" = $1::uuid ORDER BY "createdAt", "Id" LIMIT 51`,
    `SELECT count(*) AS count FROM "UserTenantMapping" WHERE "userId" = $1::uuid`,
  ],
  createTenant: [
    `insert into "Tenants" ("tenant_id", "name", "domain", "params", "created_at", "updated_at", "state", "deleted_at", "purge_at") values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning "version"`,
  ],
  // The same INSERT with the program params (the scenarios compare the
  // service with and without a params schema, not with this).
  createTenantProgram: [
    `insert into "Tenants" ("tenant_id", "name", "domain", "params", "created_at", "updated_at", "state", "deleted_at", "purge_at") values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning "version"`,
  ],
  createTenantBound: [
    `insert into "Tenants" ("tenant_id", "name", "domain", "params", "created_at", "updated_at", "state", "deleted_at", "purge_at") values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning "version"`,
  ],
  createMembership: [
    `insert into "UserTenantMapping" ("Id", "tenantId", "userId", "createdBy", "updatedBy", "createdAt", "updatedAt", "roles") values ($1, $2, $3, $4, $5, $6, $7, $8) returning "version"`,
  ],
  update: [
    `select "t0".* from "Tenants" as "t0" where "t0"."tenant_id" = $1 limit 1 for update`,
    `update "Tenants" set "params" = $1, "updated_at" = $2, "version" = "version" + 1 where "tenant_id" = $3 and "version" = $4 returning "version"`,
  ],
} as const;

export type Op = keyof typeof baselineSql;

/** The mixed workload: 90% reads. */
export const MIXED: Array<[Op, number]> = [
  ["lookup", 45],
  ["get", 30],
  ["listMemberships", 10],
  ["list", 5],
  ["createMembership", 5],
  ["createTenant", 3],
  ["update", 2],
];

/** A fresh tenant for CreateTenant (unique name and domain per call). */
export function newTenant(seq: string): { name: string; domain: string; params: JsonObject } {
  return { name: `Created ${seq}`, domain: `c-${seq}.create.bench.example`, params: tenantParams(Number.parseInt(seq.slice(-6), 36) || 0) };
}

export function uniqueSeq(prefix: string, n: number): string {
  return `${prefix}-${n.toString(36)}-${randomUUID().slice(0, 8)}`;
}
