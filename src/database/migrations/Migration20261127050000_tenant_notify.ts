import { Migration } from "@mikro-orm/migrations";

/**
 * Announces every change of a tenant row on the channel
 * `tenancy_tenant_changed` (src/cache/tenant-invalidation.ts), from inside
 * the writing transaction, so that every instance drops the tenant from its
 * cache when the change commits, whoever made it (an RPC, the purge job,
 * another instance, a person with psql). The payload is the tenant id, or
 * `*` after a TRUNCATE. Inserts are not announced: a new tenant cannot be
 * in any cache (misses are not cached), and NOTIFY serializes committing
 * transactions, which creates need not pay for.
 */
export class Migration20261127050000_tenant_notify extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      CREATE OR REPLACE FUNCTION tenancy_tenant_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          PERFORM pg_notify('tenancy_tenant_changed', '*');
        ELSE
          PERFORM pg_notify('tenancy_tenant_changed', OLD.tenant_id::text);
        END IF;
        RETURN NULL;
      END $$`);
    this.addSql(`DROP TRIGGER IF EXISTS "Tenants_changed" ON "Tenants"`);
    this.addSql(`
      CREATE TRIGGER "Tenants_changed" AFTER UPDATE OR DELETE ON "Tenants"
        FOR EACH ROW EXECUTE FUNCTION tenancy_tenant_changed()`);
    this.addSql(`DROP TRIGGER IF EXISTS "Tenants_truncated" ON "Tenants"`);
    this.addSql(`
      CREATE TRIGGER "Tenants_truncated" AFTER TRUNCATE ON "Tenants"
        FOR EACH STATEMENT EXECUTE FUNCTION tenancy_tenant_changed()`);
  }

  override async down(): Promise<void> {
    this.addSql(`DROP TRIGGER IF EXISTS "Tenants_truncated" ON "Tenants"`);
    this.addSql(`DROP TRIGGER IF EXISTS "Tenants_changed" ON "Tenants"`);
    this.addSql(`DROP FUNCTION IF EXISTS tenancy_tenant_changed()`);
  }
}
