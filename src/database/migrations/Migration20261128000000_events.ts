import { Migration } from "@mikro-orm/migrations";
import { eventTrigger } from "./event-trigger.js";

/**
 * The change feed (src/events/): every change of a tenant or a membership is
 * written to "Events" by triggers, in the writing transaction, whoever
 * writes (an RPC, a coalesced batch, the purge job, someone with psql). A
 * write that rolls back leaves no event; one that commits has its events.
 *
 * Order without gaps. A sequence number taken from a plain sequence or an
 * identity column is not enough: a transaction that took 41 can commit after
 * one that took 42, and a reader that already passed 42 would never see 41.
 * So the triggers take a transaction-scoped advisory lock before they number
 * their events, and keep it until the transaction ends: numbers are handed
 * out in commit order, and a transaction becomes visible before the next one
 * can number anything (PostgreSQL makes a commit visible before it releases
 * the committing transaction's locks). A reader that sees sequence N
 * therefore sees every event below N that will ever exist. The lock is taken
 * at the end of the writing statement (AFTER ... FOR EACH STATEMENT), after
 * the statement's row locks, and every write path ends its transaction soon
 * after its last statement, so it is held briefly and never waits on a row
 * lock while held (which could deadlock).
 *
 * The triggers are statement-level with transition tables: a coalesced batch
 * of 128 inserts writes its 128 events with one INSERT.
 *
 * Who acted and which request: the transaction-local settings
 * `tenancy.actor` and `tenancy.request_id` (src/events/event-context.ts),
 * except for inserts, whose rows name their creator ("createdBy", and the new
 * "Tenants".created_by): one coalesced statement inserts the rows of many
 * callers. The last sequence a transaction produced is left in the
 * transaction-local setting `tenancy.event_sequence` and announced on the
 * channel `tenancy_events` when it commits.
 */
export class Migration20261128000000_events extends Migration {
  override async up(): Promise<void> {
    this.addSql(`ALTER TABLE "Tenants" ADD COLUMN IF NOT EXISTS created_by uuid`);
    // A retried create answers with the original event sequence too.
    this.addSql(`ALTER TABLE "RequestIds" ADD COLUMN IF NOT EXISTS event_sequence bigint`);
    this.addSql(`CREATE SEQUENCE IF NOT EXISTS tenancy_event_sequence AS bigint`);
    this.addSql(`
      CREATE TABLE IF NOT EXISTS "Events" (
        sequence bigint PRIMARY KEY,
        id uuid NOT NULL DEFAULT gen_random_uuid(),
        time timestamptz NOT NULL DEFAULT clock_timestamp(),
        type text NOT NULL,
        tenant_id uuid,
        resource_id uuid,
        user_id uuid,
        actor uuid,
        request_id uuid,
        resource jsonb NOT NULL,
        changed_fields text[] NOT NULL DEFAULT '{}'
      )`);
    // A tenant's history (ListEvents, the console), and the sequences of a
    // coalesced batch's events (resource_id).
    this.addSql(`CREATE INDEX IF NOT EXISTS "Events_tenant_id_sequence_idx" ON "Events" (tenant_id, sequence)`);
    this.addSql(`CREATE INDEX IF NOT EXISTS "Events_resource_id_idx" ON "Events" (resource_id)`);
    // Time ranges and retention: times grow with sequences, which BRIN suits at almost no write cost.
    this.addSql(`CREATE INDEX IF NOT EXISTS "Events_time_idx" ON "Events" USING brin (time)`);
    // One row: how far the feed was pruned (resuming before it is EVENTS_EXPIRED) and how far it was relayed to NATS.
    this.addSql(`
      CREATE TABLE IF NOT EXISTS "EventFeed" (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        pruned_through bigint NOT NULL DEFAULT 0,
        relayed_through bigint NOT NULL DEFAULT 0
      )`);
    this.addSql(`INSERT INTO "EventFeed" DEFAULT VALUES ON CONFLICT DO NOTHING`);

    this.addSql(`
      CREATE OR REPLACE FUNCTION tenancy_setting_uuid(name text) RETURNS uuid LANGUAGE sql STABLE AS $$
        SELECT nullif(current_setting(name, true), '')::uuid
      $$`);
    // A params key as UpdateTenant's mask paths write it (tenant.update-mask.ts).
    this.addSql(`
      CREATE OR REPLACE FUNCTION tenancy_mask_key(key text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE WHEN key ~ '^[A-Za-z0-9_-]+$' THEN key ELSE '\`' || replace(key, '\`', '\`\`') || '\`' END
      $$`);
    // The paths under \`path\` whose values differ, down to the deepest key that differs.
    this.addSql(`
      CREATE OR REPLACE FUNCTION tenancy_json_changes(a jsonb, b jsonb, path text) RETURNS SETOF text LANGUAGE plpgsql IMMUTABLE AS $$
      DECLARE
        k text;
      BEGIN
        IF a IS NOT DISTINCT FROM b THEN
          RETURN;
        END IF;
        IF jsonb_typeof(a) = 'object' AND jsonb_typeof(b) = 'object' THEN
          FOR k IN SELECT key FROM jsonb_object_keys(a) AS t(key) UNION SELECT key FROM jsonb_object_keys(b) AS t(key) ORDER BY 1 LOOP
            RETURN QUERY SELECT * FROM tenancy_json_changes(a -> k, b -> k, path || '.' || tenancy_mask_key(k));
          END LOOP;
        ELSE
          RETURN NEXT path;
        END IF;
      END $$`);
    // Called by every event trigger before it numbers its events (see above).
    this.addSql(`
      CREATE OR REPLACE FUNCTION tenancy_lock_event_sequence() RETURNS void LANGUAGE sql AS $$
        SELECT pg_advisory_xact_lock(7301126873001)
      $$`);
    this.addSql(`
      CREATE OR REPLACE FUNCTION tenancy_events_appended(last bigint) RETURNS void LANGUAGE plpgsql AS $$
      BEGIN
        IF last IS NOT NULL THEN
          PERFORM set_config('tenancy.event_sequence', last::text, true);
          PERFORM pg_notify('tenancy_events', last::text);
        END IF;
      END $$`);

    this.addSql(
      eventTrigger("tenancy_tenants_inserted", "new_rows", `
          INSERT INTO "Events" (sequence, type, tenant_id, resource_id, actor, request_id, resource)
          SELECT nextval('tenancy_event_sequence'), 'tenant.created', n.tenant_id, n.tenant_id,
                 coalesce(n.created_by, tenancy_setting_uuid('tenancy.actor')), tenancy_setting_uuid('tenancy.request_id'), to_jsonb(n)
            FROM new_rows n`),
    );
    this.addSql(
      eventTrigger("tenancy_tenants_updated", "new_rows", `
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
                   CASE WHEN o.state IS DISTINCT FROM n.state THEN 'state' END
                 ], NULL)
                 || ARRAY(SELECT tenancy_json_changes(coalesce(o.params, '{}'), coalesce(n.params, '{}'), 'params'))
            FROM old_rows o JOIN new_rows n ON n.tenant_id = o.tenant_id`),
    );
    this.addSql(
      eventTrigger("tenancy_tenants_deleted", "old_rows", `
          INSERT INTO "Events" (sequence, type, tenant_id, resource_id, actor, request_id, resource)
          SELECT nextval('tenancy_event_sequence'), 'tenant.purged', o.tenant_id, o.tenant_id,
                 tenancy_setting_uuid('tenancy.actor'), tenancy_setting_uuid('tenancy.request_id'), to_jsonb(o)
            FROM old_rows o`),
    );
    this.addSql(
      eventTrigger("tenancy_memberships_inserted", "new_rows", `
          INSERT INTO "Events" (sequence, type, tenant_id, resource_id, user_id, actor, request_id, resource)
          SELECT nextval('tenancy_event_sequence'), 'membership.created', n."tenantId", n."Id", n."userId",
                 coalesce(n."createdBy", tenancy_setting_uuid('tenancy.actor')), tenancy_setting_uuid('tenancy.request_id'), to_jsonb(n)
            FROM new_rows n`),
    );
    this.addSql(
      eventTrigger("tenancy_memberships_updated", "new_rows", `
          INSERT INTO "Events" (sequence, type, tenant_id, resource_id, user_id, actor, request_id, resource, changed_fields)
          SELECT nextval('tenancy_event_sequence'), 'membership.updated', n."tenantId", n."Id", n."userId",
                 tenancy_setting_uuid('tenancy.actor'), tenancy_setting_uuid('tenancy.request_id'), to_jsonb(n),
                 array_remove(ARRAY[CASE WHEN o.roles IS DISTINCT FROM n.roles THEN 'roles' END], NULL)
            FROM old_rows o JOIN new_rows n ON n."Id" = o."Id"`),
    );
    this.addSql(
      eventTrigger("tenancy_memberships_deleted", "old_rows", `
          INSERT INTO "Events" (sequence, type, tenant_id, resource_id, user_id, actor, request_id, resource)
          SELECT nextval('tenancy_event_sequence'), 'membership.deleted', o."tenantId", o."Id", o."userId",
                 tenancy_setting_uuid('tenancy.actor'), tenancy_setting_uuid('tenancy.request_id'), to_jsonb(o)
            FROM old_rows o`),
    );

    for (const [table, prefix, kind] of [
      ["Tenants", "Tenants", "tenants"],
      ["UserTenantMapping", "UserTenantMapping", "memberships"],
    ] as const) {
      this.addSql(`DROP TRIGGER IF EXISTS "${prefix}_events_inserted" ON "${table}"`);
      this.addSql(`
        CREATE TRIGGER "${prefix}_events_inserted" AFTER INSERT ON "${table}"
          REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenancy_${kind}_inserted()`);
      this.addSql(`DROP TRIGGER IF EXISTS "${prefix}_events_updated" ON "${table}"`);
      this.addSql(`
        CREATE TRIGGER "${prefix}_events_updated" AFTER UPDATE ON "${table}"
          REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenancy_${kind}_updated()`);
      this.addSql(`DROP TRIGGER IF EXISTS "${prefix}_events_deleted" ON "${table}"`);
      this.addSql(`
        CREATE TRIGGER "${prefix}_events_deleted" AFTER DELETE ON "${table}"
          REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tenancy_${kind}_deleted()`);
    }
  }

  override async down(): Promise<void> {
    for (const table of ["Tenants", "UserTenantMapping"]) {
      for (const op of ["inserted", "updated", "deleted"]) this.addSql(`DROP TRIGGER IF EXISTS "${table}_events_${op}" ON "${table}"`);
    }
    for (const fn of [
      "tenancy_tenants_inserted()",
      "tenancy_tenants_updated()",
      "tenancy_tenants_deleted()",
      "tenancy_memberships_inserted()",
      "tenancy_memberships_updated()",
      "tenancy_memberships_deleted()",
      "tenancy_events_appended(bigint)",
      "tenancy_lock_event_sequence()",
      "tenancy_json_changes(jsonb, jsonb, text)",
      "tenancy_mask_key(text)",
      "tenancy_setting_uuid(text)",
    ]) {
      this.addSql(`DROP FUNCTION IF EXISTS ${fn}`);
    }
    this.addSql(`DROP TABLE IF EXISTS "EventFeed"`);
    this.addSql(`DROP TABLE IF EXISTS "Events"`);
    this.addSql(`DROP SEQUENCE IF EXISTS tenancy_event_sequence`);
    this.addSql(`ALTER TABLE "RequestIds" DROP COLUMN IF EXISTS event_sequence`);
    this.addSql(`ALTER TABLE "Tenants" DROP COLUMN IF EXISTS created_by`);
  }
}
