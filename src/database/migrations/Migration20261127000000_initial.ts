import { Migration } from "@mikro-orm/migrations";

/**
 * The seed's two tables, written so that the service can also adopt a
 * database that already has them: every statement is conditional, and the
 * service's own additions (the etag version, the case-insensitive name index,
 * the listing indexes) are added to existing tables.
 */
export class Migration20261127000000_initial extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      CREATE TABLE IF NOT EXISTS "Tenants" (
        tenant_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name varchar(255) NOT NULL,
        domain varchar(255) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        params jsonb,
        CONSTRAINT "Tenants_name_key" UNIQUE (name),
        CONSTRAINT "Tenants_domain_key" UNIQUE (domain)
      )`);
    this.addSql(`ALTER TABLE "Tenants" ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 1`);
    // Names are unique regardless of case: "Acme" and "ACME" conflict. The
    // same expression serves LookupTenant by name.
    this.addSql(`CREATE UNIQUE INDEX IF NOT EXISTS "Tenants_name_lower_key" ON "Tenants" (lower(name))`);
    // The default ListTenants order.
    this.addSql(`CREATE INDEX IF NOT EXISTS "Tenants_created_at_idx" ON "Tenants" (created_at, tenant_id)`);

    this.addSql(`
      CREATE TABLE IF NOT EXISTS "UserTenantMapping" (
        "Id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenantId" uuid NOT NULL,
        "userId" uuid NOT NULL,
        "createdBy" uuid,
        "updatedBy" uuid,
        "createdAt" timestamptz NOT NULL DEFAULT now(),
        "updatedAt" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "UserTenantMapping_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "Tenants" (tenant_id),
        CONSTRAINT "UserTenantMapping_tenantId_userId_key" UNIQUE ("tenantId", "userId")
      )`);
    // Listing a tenant's members and a user's tenants, oldest first.
    this.addSql(`CREATE INDEX IF NOT EXISTS "UserTenantMapping_tenantId_createdAt_idx" ON "UserTenantMapping" ("tenantId", "createdAt", "Id")`);
    this.addSql(`CREATE INDEX IF NOT EXISTS "UserTenantMapping_userId_createdAt_idx" ON "UserTenantMapping" ("userId", "createdAt", "Id")`);
  }

  override async down(): Promise<void> {
    this.addSql(`DROP TABLE IF EXISTS "UserTenantMapping"`);
    this.addSql(`DROP TABLE IF EXISTS "Tenants"`);
  }
}
