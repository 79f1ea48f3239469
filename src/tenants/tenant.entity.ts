import { EntitySchema } from "@mikro-orm/core";
import { JsonDocumentType } from "../database/json-document.type.js";

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
  state!: TenantState;
  /** Set while DELETED. */
  deletedAt!: Date | null;
  /** When a DELETED tenant is purged for good; set while DELETED. */
  purgeAt!: Date | null;
  /** Who created it (the principal's user id); the change feed's actor of `tenant.created`. Not on the wire. */
  createdBy!: string | null;
  /** The params schema the tenant is bound to (name and version, both or neither); null for free-form params. */
  paramsSchemaName!: string | null;
  paramsSchemaVersion!: number | null;
}

export type TenantState = "ACTIVE" | "SUSPENDED" | "DELETED";

export const TenantSchema = new EntitySchema<Tenant>({
  class: Tenant,
  tableName: "Tenants",
  properties: {
    id: { type: "uuid", primary: true, fieldName: "tenant_id" },
    name: { type: "string", length: 255, fieldName: "name" },
    domain: { type: "string", length: 255, fieldName: "domain" },
    // Opaque to the ORM, whatever keys a client uses (see json-document.type.ts).
    params: { type: JsonDocumentType, nullable: true, fieldName: "params" },
    createdAt: { type: "Date", columnType: "timestamptz", fieldName: "created_at", defaultRaw: "now()" },
    updatedAt: { type: "Date", columnType: "timestamptz", fieldName: "updated_at", defaultRaw: "now()" },
    version: { type: "integer", version: true, fieldName: "version" },
    state: { type: "string", fieldName: "state", default: "ACTIVE" },
    deletedAt: { type: "Date", columnType: "timestamptz", fieldName: "deleted_at", nullable: true },
    purgeAt: { type: "Date", columnType: "timestamptz", fieldName: "purge_at", nullable: true },
    createdBy: { type: "uuid", fieldName: "created_by", nullable: true },
    paramsSchemaName: { type: "string", columnType: "text", fieldName: "params_schema_name", nullable: true },
    paramsSchemaVersion: { type: "integer", fieldName: "params_schema_version", nullable: true },
  },
});
