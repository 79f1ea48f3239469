import { Migration } from "@mikro-orm/migrations";

/**
 * Named, versioned JSON Schemas for tenant params (ParamsSchemaService), and
 * the binding of a tenant to one version. A version is never changed nor
 * deleted once registered; the foreign key keeps a tenant from naming a
 * version that does not exist. The document is `json`, not `jsonb`, so that
 * it is returned with its keys in the order its author wrote them.
 */
export class Migration20261128020000_params_schemas extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      CREATE TABLE IF NOT EXISTS "ParamsSchemas" (
        name text NOT NULL,
        version integer NOT NULL CHECK (version >= 1),
        schema json NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by uuid,
        PRIMARY KEY (name, version)
      )`);
    this.addSql(`ALTER TABLE "Tenants" ADD COLUMN IF NOT EXISTS params_schema_name text`);
    this.addSql(`ALTER TABLE "Tenants" ADD COLUMN IF NOT EXISTS params_schema_version integer`);
    this.addSql(`
      DO $$ BEGIN
        ALTER TABLE "Tenants" ADD CONSTRAINT "Tenants_params_schema_fkey"
          FOREIGN KEY (params_schema_name, params_schema_version) REFERENCES "ParamsSchemas" (name, version);
      EXCEPTION WHEN duplicate_object THEN NULL;
      END $$`);
    this.addSql(`
      DO $$ BEGIN
        ALTER TABLE "Tenants" ADD CONSTRAINT "Tenants_params_schema_check"
          CHECK ((params_schema_name IS NULL) = (params_schema_version IS NULL));
      EXCEPTION WHEN duplicate_object THEN NULL;
      END $$`);
    // Finding the tenants of a version (filters on params_schema, rebinding).
    this.addSql(`
      CREATE INDEX IF NOT EXISTS "Tenants_params_schema_idx" ON "Tenants" (params_schema_name, params_schema_version)
        WHERE params_schema_name IS NOT NULL`);
  }

  override async down(): Promise<void> {
    this.addSql(`DROP INDEX IF EXISTS "Tenants_params_schema_idx"`);
    this.addSql(`ALTER TABLE "Tenants" DROP CONSTRAINT IF EXISTS "Tenants_params_schema_check"`);
    this.addSql(`ALTER TABLE "Tenants" DROP CONSTRAINT IF EXISTS "Tenants_params_schema_fkey"`);
    this.addSql(`ALTER TABLE "Tenants" DROP COLUMN IF EXISTS params_schema_version, DROP COLUMN IF EXISTS params_schema_name`);
    this.addSql(`DROP TABLE IF EXISTS "ParamsSchemas"`);
  }
}
