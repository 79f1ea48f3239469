import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer } from "../../src/server.js";
import { createLogger } from "../../src/logger.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

describe("AUTH_MODE=none outside loopback", () => {
  it("stops the real process at start-up with a message saying why", async () => {
    const env: Record<string, string | undefined> = { ...process.env, HOST: "0.0.0.0", PORT: "0", DATABASE_URL: server.databaseUrl };
    for (const name of Object.keys(env)) if (name.startsWith("AUTH_")) delete env[name];
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const [code] = await once(child, "exit");
    expect(code).toBe(2);
    expect(stderr).toMatch(/invalid configuration: AUTH_MODE is none, which makes every caller a platform administrator/);
    expect(stderr).toMatch(/HOST is "0.0.0.0"/);
  });

  it("is refused by the server itself too, when built in code", async () => {
    const other = createServer({ orm: server.orm, logger: createLogger("silent"), health: server.health, tenantCacheSize: 0 });
    await expect(other.listen(0, "0.0.0.0")).rejects.toThrow(/listens only on loopback/);
    const jwt = createServer({
      orm: server.orm,
      logger: createLogger("silent"),
      health: server.health,
      tenantCacheSize: 0,
      auth: { mode: "jwt", keys: { kind: "secret", secret: "x".repeat(32) } },
    });
    const address = await jwt.listen(0, "0.0.0.0");
    expect(address.port).toBeGreaterThan(0);
    await jwt.close(100);
  });
});
