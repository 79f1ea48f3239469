/** `npm run migrate`: applies pending migrations to DATABASE_URL, or to the embedded database. */
import { ConfigError, loadConfig } from "../config.js";
import { databaseFailure, exitOnStartupFailure, redactedUrl } from "../startup.js";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./embedded-postgres.js";
import { initORM, migrate } from "./orm.js";

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exit(2);
}
let embedded: EmbeddedDatabase | undefined;
try {
  embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres({ dataDir: config.dataDir });
  const databaseUrl = config.databaseUrl ?? embedded!.url;
  const database = { embedded: embedded !== undefined, url: redactedUrl(databaseUrl) };
  const orm = await initORM({ databaseUrl }).catch((error) => {
    throw databaseFailure(error, "connect", database);
  });
  try {
    const applied = await migrate(orm).catch((error) => {
      throw databaseFailure(error, "migrate", database);
    });
    process.stdout.write(applied.length ? `applied: ${applied.join(", ")}\n` : "schema is up to date\n");
  } finally {
    await orm.close();
  }
} catch (error) {
  await embedded?.stop();
  exitOnStartupFailure(error, undefined, "npm run migrate failed");
}
await embedded?.stop();
