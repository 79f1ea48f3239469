import { Migration } from "@mikro-orm/migrations";
import { eventTrigger } from "./event-trigger.js";

/**
 * The change feed's trigger function for updates of "Tenants"
 * (Migration20261128000000_events), with or without `params_schema` among
 * the changed fields.
 */
function tenantsUpdated(withBinding: boolean): string {
  return eventTrigger("tenancy_tenants_updated", "new_rows", `
          INSERT INTO "Events" (sequence, type, tenant_id, resource_id, actor, request_id, resource, changed_fields)
          SELECT nextval('tenancy_event_sequence'),
                 CASE
                   WHEN o.state <> 'DELETED' AND n.state = 'DELETED' THEN 'tenant.deleted'
                   WHEN o.state = 'DELETED' AND n.state <> 'DELETED' THEN 'tenant.undeleted'
                   WHEN o.state = 'ACTIVE' AND n.state = 'SUSPENDED' THEN 'tenant.suspended'
                   WHEN o.state = 'SUSPENDED' AND n.state = 'ACTIVE' THEN 'tenant.activated'
                   ELSE 'tenant.updated'
                 END,
                 n.tenant_id, n.tenant_id, tenancy_setting_uuid('tenancy.actor'), tenancy_setting_uuid('tenancy.request_id'), to_jsonb(n),
                 array_remove(ARRAY[
                   CASE WHEN o.name IS DISTINCT FROM n.name THEN 'name' END,
                   CASE WHEN o.domain IS DISTINCT FROM n.domain THEN 'domain' END,
                   CASE WHEN o.state IS DISTINCT FROM n.state THEN 'state' END${withBinding ? `,
                   CASE WHEN (o.params_schema_name, o.params_schema_version) IS DISTINCT FROM (n.params_schema_name, n.params_schema_version)
                        THEN 'params_schema' END` : ""}
                 ], NULL)
                 || ARRAY(SELECT tenancy_json_changes(coalesce(o.params, '{}'), coalesce(n.params, '{}'), 'params'))
            FROM old_rows o JOIN new_rows n ON n.tenant_id = o.tenant_id`);
}

/**
 * Named, versioned JSON Schemas for tenant params (ParamsSchemaService), and
 * the binding of a tenant to one version. A version is never changed nor
 * deleted once registered; the foreign key keeps a tenant from naming a
 * version that does not exist. The document is `json`, not `jsonb`, so that
 * it is returned with its keys in the order its author wrote them.
 *
 * The change feed: a registration is a `params_schema.created` event
 * (written as the other events are, by a statement-level trigger in the
 * registering transaction; the resource leaves the document out), and a
 * change of a tenant's binding is a changed field `params_schema` of its
 * `tenant.updated` event.
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
    this.addSql(
      eventTrigger("tenancy_params_schemas_inserted", "new_rows", `
          INSERT INTO "Events" (sequence, type, actor, request_id, resource)
          SELECT nextval('tenancy_event_sequence'), 'params_schema.created',
                 coalesce(n.created_by, tenancy_setting_uuid('tenancy.actor')), tenancy_setting_uuid('tenancy.request_id'),
                 to_jsonb(n) - 'schema'
            FROM new_rows n`),
    );
    this.addSql(`DROP TRIGGER IF EXISTS "ParamsSchemas_events_inserted" ON "ParamsSchemas"`);
    this.addSql(`
      CREATE TRIGGER "ParamsSchemas_events_inserted" AFTER INSERT ON "ParamsSchemas"
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenancy_params_schemas_inserted()`);
    this.addSql(tenantsUpdated(true));
    // Finding the tenants of a version (filters on params_schema, rebinding).
    this.addSql(`
      CREATE INDEX IF NOT EXISTS "Tenants_params_schema_idx" ON "Tenants" (params_schema_name, params_schema_version)
        WHERE params_schema_name IS NOT NULL`);
  }

  override async down(): Promise<void> {
    this.addSql(tenantsUpdated(false));
    this.addSql(`DROP TRIGGER IF EXISTS "ParamsSchemas_events_inserted" ON "ParamsSchemas"`);
    this.addSql(`DROP FUNCTION IF EXISTS tenancy_params_schemas_inserted()`);
    this.addSql(`DROP INDEX IF EXISTS "Tenants_params_schema_idx"`);
    this.addSql(`ALTER TABLE "Tenants" DROP CONSTRAINT IF EXISTS "Tenants_params_schema_check"`);
    this.addSql(`ALTER TABLE "Tenants" DROP CONSTRAINT IF EXISTS "Tenants_params_schema_fkey"`);
    this.addSql(`ALTER TABLE "Tenants" DROP COLUMN IF EXISTS params_schema_version, DROP COLUMN IF EXISTS params_schema_name`);
    this.addSql(`DROP TABLE IF EXISTS "ParamsSchemas"`);
  }
}
