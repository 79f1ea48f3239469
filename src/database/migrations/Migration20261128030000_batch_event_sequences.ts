import { Migration } from "@mikro-orm/migrations";

/**
 * A coalesced create (src/database/batch-insert.ts) answers each caller with
 * the sequence of its own `*.created` event (the `tenancy-event-sequence`
 * header). It used to read them back with a second query after the commit,
 * by resource id, which cost each batch a round trip and "Events" an index
 * on resource_id that nothing else reads.
 *
 * `tenancy_insert_with_event_sequences(statement, batch)` runs the batch's
 * INSERT (`statement`, which takes the batch as $1 and returns the inserted
 * keys as `id`) and answers each inserted key with its event's sequence, in
 * one statement. It needs no lookup by resource: the statement's event
 * trigger fired when the INSERT ended (triggers of statements run inside a
 * function fire at the end of each statement), numbered its events under
 * the feed's lock (Migration20261128000000_events), so no other transaction
 * took a number in between, and left the last one in
 * `tenancy.event_sequence`. The events of n inserted rows are therefore the
 * sequences (last - n, last], found by a range scan of the primary key. With
 * the triggers disabled the sequences are null.
 */
export class Migration20261128030000_batch_event_sequences extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      CREATE OR REPLACE FUNCTION tenancy_insert_with_event_sequences(statement text, batch jsonb)
        RETURNS TABLE (id uuid, event_sequence bigint) LANGUAGE plpgsql AS $$
      DECLARE
        inserted uuid[];
        last bigint;
      BEGIN
        EXECUTE 'WITH inserted AS (' || statement || ') SELECT array_agg(id) FROM inserted' INTO inserted USING batch;
        IF inserted IS NULL THEN
          RETURN;
        END IF;
        last := nullif(current_setting('tenancy.event_sequence', true), '')::bigint;
        RETURN QUERY
          SELECT i.id, e.sequence
            FROM unnest(inserted) AS i(id)
            LEFT JOIN (
              SELECT ev.resource_id, ev.sequence FROM "Events" ev
               WHERE ev.sequence > last - cardinality(inserted) AND ev.sequence <= last
            ) e ON e.resource_id = i.id;
      END $$`);
    this.addSql(`DROP INDEX IF EXISTS "Events_resource_id_idx"`);
  }

  override async down(): Promise<void> {
    this.addSql(`CREATE INDEX IF NOT EXISTS "Events_resource_id_idx" ON "Events" (resource_id)`);
    this.addSql(`DROP FUNCTION IF EXISTS tenancy_insert_with_event_sequences(text, jsonb)`);
  }
}
