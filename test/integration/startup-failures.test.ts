import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/database/embedded-postgres.js";
import { serviceEnv, startServiceProcess, stderrLines } from "../support/service-process.js";

/**
 * Starts that fail, on the real process with the embedded PostgreSQL: each
 * must say in one line what is wrong and what to do, and leave nothing
 * running behind it.
 */
const dataDirs: string[] = [];
/** A DATA_DIR of its own for a test (as root, the service lets the postgres user enter it). */
async function newDataDir(): Promise<string> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-startup-"));
  dataDirs.push(dataDir);
  return dataDir;
}
afterAll(async () => {
  for (const dataDir of dataDirs) await rm(dataDir, { recursive: true, force: true });
});

function expectOneLine(lines: string[]): string {
  expect(lines, lines.join("\n")).toHaveLength(1);
  expect(lines[0]).not.toMatch(/^\s+at /);
  return lines[0]!;
}

describe("a start that fails", () => {
  it("with its port taken, says so and stops the embedded PostgreSQL it had started", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as net.AddressInfo;
    const dataDir = await newDataDir();
    try {
      const service = startServiceProcess({ env: serviceEnv({ PORT: String(port), DATA_DIR: dataDir }) });
      const { code } = await service.exited;
      expect(code).toBe(1);
      expect(expectOneLine(stderrLines(service))).toBe(
        `tenancy failed to start: port ${port} on 127.0.0.1 is already in use by another process: stop that process, or set PORT to a free port (PORT=0 picks one)`,
      );
      // The database had started and migrated...
      expect(service.lines.some((line) => line.msg === "migrations applied")).toBe(true);
      // ...and was shut down cleanly: PostgreSQL removes its lock file last.
      expect(existsSync(path.join(dataDir, "postgres", "PG_VERSION"))).toBe(true);
      expect(existsSync(path.join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
    } finally {
      blocker.close();
    }
  });

  it("with WORKERS=2 and the port taken, says so once and stops the embedded PostgreSQL", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as net.AddressInfo;
    const dataDir = await newDataDir();
    try {
      const service = startServiceProcess({ env: serviceEnv({ PORT: String(port), DATA_DIR: dataDir, WORKERS: "2" }) });
      const { code } = await service.exited;
      expect(code).toBe(1);
      expect(expectOneLine(stderrLines(service))).toBe(
        `tenancy failed to start: port ${port} on 127.0.0.1 is already in use by another process: stop that process, or set PORT to a free port (PORT=0 picks one)`,
      );
      expect(service.lines.some((line) => line.msg === "migrations applied")).toBe(true);
      expect(existsSync(path.join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
    } finally {
      blocker.close();
    }
  });

  it("on a DATA_DIR in use, names the process using it and how to choose another", async () => {
    const shared = await newDataDir();
    const first = startServiceProcess({ env: serviceEnv({ PORT: "0", DATA_DIR: shared }) });
    try {
      await first.listening;
      const second = startServiceProcess({ env: serviceEnv({ PORT: "0", DATA_DIR: shared }) });
      const { code } = await second.exited;
      expect(code).toBe(1);
      const line = expectOneLine(stderrLines(second));
      expect(line).toMatch(
        new RegExp(
          `^tenancy failed to start: DATA_DIR ${shared} is in use by process ${first.child.pid} \\(node\\), whose embedded PostgreSQL \\(PID \\d+\\) runs on it: ` +
            `stop that process, or give this one a DATA_DIR of its own \\(e\\.g\\. DATA_DIR=\\.data-2 npm start\\)$`,
        ),
      );
      // The first instance is unharmed.
      const ready = await fetch(`http://${await first.listening}/readyz`);
      expect(ready.status).toBe(200);
    } finally {
      first.child.kill("SIGTERM");
      expect((await first.exited).code).toBe(0);
    }
    expect(existsSync(path.join(shared, "postgres", "postmaster.pid"))).toBe(false);
  });

  it("interrupted by SIGTERM while it starts, stops the embedded PostgreSQL and exits with the signal's status", async () => {
    const dataDir = await newDataDir();
    // debug: PostgreSQL's own log lines, to see it start and stop.
    const service = startServiceProcess({ env: serviceEnv({ PORT: "0", DATA_DIR: dataDir, LOG_LEVEL: "debug" }) });
    // initdb and the start of PostgreSQL follow this line: seconds of start-up left.
    await service.line((line) => line.msg === "DATABASE_URL is not set: starting the embedded PostgreSQL");
    service.child.kill("SIGTERM");
    const { code } = await service.exited;
    expect(code).toBe(143);
    expect(stderrLines(service)).toEqual([]);
    expect(service.lines.some((line) => line.msg === "interrupted while starting: stopping what was started")).toBe(true);
    expect(service.lines.some((line) => String(line.msg).includes("listening"))).toBe(false);
    const postgres = service.lines.map((line) => String(line.postgres ?? ""));
    expect(postgres.some((line) => line.includes("database system is ready to accept connections"))).toBe(true);
    expect(postgres.some((line) => line.includes("database system is shut down"))).toBe(true);
    expect(existsSync(path.join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
  });

  it("on an unreachable DATABASE_URL, names it (without its password) and what to check", async () => {
    const closed = await freePort();
    const service = startServiceProcess({ env: serviceEnv({ PORT: "0", DATABASE_URL: `postgres://app:secret@127.0.0.1:${closed}/tenancy` }) });
    const { code } = await service.exited;
    expect(code).toBe(1);
    const line = expectOneLine(stderrLines(service));
    expect(line).toBe(
      `tenancy failed to start: cannot connect to the database of DATABASE_URL (postgres://app:***@127.0.0.1:${closed}/tenancy): ` +
        `connect ECONNREFUSED 127.0.0.1:${closed}: check that PostgreSQL runs there and accepts connections, or unset DATABASE_URL to use the embedded PostgreSQL`,
    );
  });
});
