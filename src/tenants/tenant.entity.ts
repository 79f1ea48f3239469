import { EntitySchema } from "@mikro-orm/core";

/**
 * A row of the seed's `"Tenants"` table. Column names are the seed's; the
 * `version` column backs the etag and is the service's own addition.
 */
export class Tenant {
  id!: string;
  name!: string;
  /** Always stored normalized (see domain-name.ts). */
  domain!: string;
  params!: Record<string, unknown> | null;
  createdAt!: Date;
  updatedAt!: Date;
  version!: number;
}

export const TenantSchema = new EntitySchema<Tenant>({
  class: Tenant,
  tableName: "Tenants",
  properties: {
    id: { type: "uuid", primary: true, fieldName: "tenant_id" },
    name: { type: "string", length: 255, fieldName: "name" },
    domain: { type: "string", length: 255, fieldName: "domain" },
    params: { type: "json", nullable: true, fieldName: "params" },
    createdAt: { type: "Date", columnType: "timestamptz", fieldName: "created_at", defaultRaw: "now()" },
    updatedAt: { type: "Date", columnType: "timestamptz", fieldName: "updated_at", defaultRaw: "now()" },
    version: { type: "integer", version: true, fieldName: "version" },
  },
});

/** Names of the unique indexes, as created by the initial migration. */
export const tenantConstraints = {
  name: "Tenants_name_key",
  nameLower: "Tenants_name_lower_key",
  domain: "Tenants_domain_key",
} as const;
