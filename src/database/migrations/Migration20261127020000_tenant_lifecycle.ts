import { Migration } from "@mikro-orm/migrations";

/**
 * Tenant lifecycle (AIP-164 soft delete): a state, and for deleted tenants
 * when they were deleted and when they will be purged. A deleted tenant keeps
 * its row, so its name and domain stay reserved until the purge.
 */
export class Migration20261127020000_tenant_lifecycle extends Migration {
  override async up(): Promise<void> {
    this.addSql(`ALTER TABLE "Tenants" ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'ACTIVE'`);
    this.addSql(`ALTER TABLE "Tenants" ADD COLUMN IF NOT EXISTS deleted_at timestamptz`);
    this.addSql(`ALTER TABLE "Tenants" ADD COLUMN IF NOT EXISTS purge_at timestamptz`);
    this.addSql(`
      DO $$ BEGIN
        ALTER TABLE "Tenants" ADD CONSTRAINT "Tenants_state_check"
          CHECK (state IN ('ACTIVE', 'SUSPENDED', 'DELETED')
                 AND (state = 'DELETED') = (deleted_at IS NOT NULL AND purge_at IS NOT NULL));
      EXCEPTION WHEN duplicate_object THEN NULL;
      END $$`);
    // The purger's work list.
    this.addSql(`CREATE INDEX IF NOT EXISTS "Tenants_purge_at_idx" ON "Tenants" (purge_at) WHERE state = 'DELETED'`);
  }

  override async down(): Promise<void> {
    this.addSql(`DROP INDEX IF EXISTS "Tenants_purge_at_idx"`);
    this.addSql(`ALTER TABLE "Tenants" DROP CONSTRAINT IF EXISTS "Tenants_state_check"`);
    this.addSql(`ALTER TABLE "Tenants" DROP COLUMN IF EXISTS purge_at, DROP COLUMN IF EXISTS deleted_at, DROP COLUMN IF EXISTS state`);
  }
}
