import { Migration } from "@mikro-orm/migrations";

/**
 * Remembers the response of every create that carried a `request_id`
 * (AIP-155), so that a retry gets the original answer, also from another
 * instance or after a restart.
 */
export class Migration20261127010000_request_ids extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      CREATE TABLE IF NOT EXISTS "RequestIds" (
        request_id uuid PRIMARY KEY,
        method text NOT NULL,
        request_hash text NOT NULL,
        response bytea,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    this.addSql(`CREATE INDEX IF NOT EXISTS "RequestIds_created_at_idx" ON "RequestIds" (created_at)`);
  }

  override async down(): Promise<void> {
    this.addSql(`DROP TABLE IF EXISTS "RequestIds"`);
  }
}
