import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import pg from "pg";
import { createTenancyClients } from "../../src/client.js";
import { createTestDatabase } from "../support/database.js";
import { waitUntil } from "../support/wait.js";

let database: { url: string; drop(): Promise<void> };
beforeAll(async () => {
  database = await createTestDatabase(inject("databaseServerUrl"));
});
afterAll(async () => {
  await database?.drop();
});

describe("graceful shutdown of the real process", () => {
  it("finishes in-flight writes on SIGTERM: every acknowledged write is in the database", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      env: { ...process.env, DATABASE_URL: database.url, PORT: "0", LOG_LEVEL: "info", SHUTDOWN_GRACE_MS: "5000" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: Record<string, unknown>[] = [];
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const listening = new Promise<string>((resolve, reject) => {
      let buffer = "";
      child.stdout.on("data", (chunk) => {
        buffer += chunk;
        let i;
        while ((i = buffer.indexOf("\n")) >= 0) {
          const line = JSON.parse(buffer.slice(0, i));
          buffer = buffer.slice(i + 1);
          lines.push(line);
          if (typeof line.address === "string" && String(line.msg).includes("listening")) resolve(line.address);
        }
      });
      child.once("exit", (code) => reject(new Error(`exited with ${code} before listening: ${stderr}`)));
    });
    const address = await listening;
    const { tenants } = createTenancyClients({ baseUrl: `http://${address}`, protocol: "grpc" });

    const acknowledged: string[] = [];
    let failures = 0;
    let stop = false;
    let signalled = false;
    /** Writes that were already under way when SIGTERM arrived but failed. */
    let inFlightAtSignalFailed = 0;
    let inFlightAtSignalDone = 0;
    const writer = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const startedBeforeSignal = !signalled;
        try {
          const t = await tenants.createTenant({ tenant: { name: `Shutdown ${w}-${i}`, domain: `s${w}-${i}.shutdown.example` } });
          acknowledged.push(t.id);
          if (startedBeforeSignal && signalled) inFlightAtSignalDone += 1;
        } catch {
          if (startedBeforeSignal) inFlightAtSignalFailed += 1;
          failures += 1;
          if (failures > 20) stop = true;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const writers = Array.from({ length: 6 }, (_, w) => writer(w));
    // Signalled in the middle of a steady stream of writes.
    await waitUntil(() => acknowledged.length >= 30, "writes acknowledged", { timeoutMs: 30_000 });
    const ackedBeforeSignal = acknowledged.length;
    signalled = true;
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    stop = true;
    await Promise.all(writers);

    expect(code).toBe(0);
    expect(ackedBeforeSignal).toBeGreaterThan(0);
    // The writes under way when the signal came were allowed to finish.
    expect(inFlightAtSignalFailed).toBe(0);
    expect(inFlightAtSignalDone).toBeGreaterThan(0);
    expect(lines.some((l) => l.msg === "shutting down")).toBe(true);
    expect(lines.at(-1)?.msg).toBe("stopped");

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const { rows } = await client.query(`SELECT tenant_id FROM "Tenants" WHERE tenant_id = ANY($1::uuid[])`, [acknowledged]);
    await client.end();
    expect(rows.length).toBe(acknowledged.length);
  });
});
