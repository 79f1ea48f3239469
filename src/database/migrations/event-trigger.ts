/**
 * An event trigger's function (see Migration20261128000000_events): when the
 * statement changed rows (`rows`, its transition table), take the feed's
 * lock, number and write the events of `insert` (an INSERT INTO "Events" ...
 * SELECT), and announce the last one. Migrations that ran already used this
 * shape: change it only in a new function.
 */
export function eventTrigger(name: string, rows: "new_rows" | "old_rows", insert: string): string {
  return `
      CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        last bigint;
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM ${rows}) THEN RETURN NULL; END IF;
        PERFORM tenancy_lock_event_sequence();
        WITH appended AS (${insert}
          RETURNING sequence)
        SELECT max(sequence) INTO last FROM appended;
        PERFORM tenancy_events_appended(last);
        RETURN NULL;
      END $$`;
}
