import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../src/database/embedded-postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A PostgreSQL server on which each test file creates its own database. */
    databaseServerUrl: string;
  }
}

/**
 * The test database server: DATABASE_URL when set, else a real PostgreSQL
 * started from the embedded-postgres package for this run only.
 */
export default async function setup(project: TestProject) {
  if (process.env.DATABASE_URL) {
    project.provide("databaseServerUrl", process.env.DATABASE_URL);
    return;
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-test-"));
  const db = await startEmbeddedPostgres({ dataDir, database: "postgres" });
  project.provide("databaseServerUrl", db.url);
  return async () => {
    await db.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
