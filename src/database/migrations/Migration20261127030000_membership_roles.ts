import { Migration } from "@mikro-orm/migrations";

/**
 * Per-tenant roles on memberships (`admin` administers the tenant) and a row
 * version for the membership etag. Existing memberships get no roles and
 * version 1. The policy's lookups need no new index: they go through the
 * unique ("tenantId", "userId") index and the primary key.
 */
export class Migration20261127030000_membership_roles extends Migration {
  override async up(): Promise<void> {
    this.addSql(`ALTER TABLE "UserTenantMapping" ADD COLUMN IF NOT EXISTS roles text[] NOT NULL DEFAULT '{}'`);
    this.addSql(`ALTER TABLE "UserTenantMapping" ADD COLUMN IF NOT EXISTS version integer NOT NULL DEFAULT 1`);
  }

  override async down(): Promise<void> {
    this.addSql(`ALTER TABLE "UserTenantMapping" DROP COLUMN IF EXISTS version`);
    this.addSql(`ALTER TABLE "UserTenantMapping" DROP COLUMN IF EXISTS roles`);
  }
}
