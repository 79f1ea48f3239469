import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("has defaults for everything", () => {
    expect(loadConfig({})).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      databaseUrl: undefined,
      dataDir: ".data",
      migrateOnStart: true,
      logLevel: "info",
      corsOrigins: [],
    });
  });

  it("reads the environment", () => {
    const config = loadConfig({
      PORT: "9000",
      DATABASE_URL: "postgres://u:p@db:5432/tenancy",
      MIGRATE_ON_START: "false",
      LOG_LEVEL: "DEBUG",
      CORS_ORIGINS: "https://a.example, http://localhost:5173",
    });
    expect(config).toMatchObject({
      port: 9000,
      databaseUrl: "postgres://u:p@db:5432/tenancy",
      migrateOnStart: false,
      logLevel: "debug",
      corsOrigins: ["https://a.example", "http://localhost:5173"],
    });
  });

  it.each([
    ["PORT", "http"],
    ["PORT", "70000"],
    ["DATABASE_URL", "mysql://x"],
    ["DATABASE_URL", "not a url"],
    ["LOG_LEVEL", "loud"],
    ["MIGRATE_ON_START", "maybe"],
    ["CORS_ORIGINS", "https://a.example/path"],
    ["SHUTDOWN_GRACE_MS", "-1"],
  ])("refuses %s=%s with a message naming the variable", (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`^invalid configuration: ${variable} `));
  });
});
