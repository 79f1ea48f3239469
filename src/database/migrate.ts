/** `npm run migrate`: applies pending migrations to DATABASE_URL, or to the embedded database. */
import { loadConfig } from "../config.js";
import { startEmbeddedPostgres } from "./embedded-postgres.js";
import { initORM, migrate } from "./orm.js";

const config = loadConfig();
const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres({ dataDir: config.dataDir });
const orm = await initORM({ databaseUrl: config.databaseUrl ?? embedded!.url });
try {
  const applied = await migrate(orm);
  process.stdout.write(applied.length ? `applied: ${applied.join(", ")}\n` : "schema is up to date\n");
} finally {
  await orm.close();
  await embedded?.stop();
}
