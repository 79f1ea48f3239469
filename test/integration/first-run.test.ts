import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenancyClients } from "../../src/client.js";
import { SYSTEM_STATE_DIR } from "../../src/database/embedded-postgres.js";
import { serviceEnv, startServiceProcess, stderrLines, type ServiceProcess } from "../support/service-process.js";

/**
 * The README's two commands as a new user runs them on a fresh machine: as
 * root, in a checkout inside a directory of mode 0700 (as /root is), where
 * the unprivileged postgres user that runs the embedded PostgreSQL can reach
 * neither node_modules nor .data. The checkout is this one's files with
 * node_modules hard-linked (a copy where links are impossible).
 */
const ROOT = new URL("../..", import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;

let home: string;
let checkout: string;
/** Where the service said it keeps the data, to remove it afterwards. */
const relocated = new Set<string>();

beforeAll(async () => {
  if (!isRoot) return;
  home = await mkdtemp(path.join(os.tmpdir(), "tenancy-first-run-"));
  await chmod(home, 0o700);
  checkout = path.join(home, "tenancy");
  await mkdir(checkout);
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" })
    .split("\0")
    .filter((file) => file && existsSync(path.join(ROOT, file)));
  for (const file of files) await cp(path.join(ROOT, file), path.join(checkout, file));
  try {
    execFileSync("cp", ["-al", path.join(ROOT, "node_modules"), path.join(checkout, "node_modules")]);
  } catch {
    await cp(path.join(ROOT, "node_modules"), path.join(checkout, "node_modules"), { recursive: true, verbatimSymlinks: true });
  }
}, 300_000);

afterAll(async () => {
  if (!isRoot) return;
  for (const directory of relocated) await rm(directory, { recursive: true, force: true });
  await rm(home, { recursive: true, force: true });
});

function trackRelocation(service: ServiceProcess): string | undefined {
  const notice = service.lines.find((line) => /keeps the data of DATA_DIR/.test(String(line.msg)));
  const directory = /in (\/\S+)$/.exec(String(notice?.msg))?.[1];
  if (directory?.startsWith(`${SYSTEM_STATE_DIR}/data/`)) relocated.add(directory);
  return directory;
}

describe.skipIf(!isRoot)("first run as root, in a checkout inside a 0700 directory", () => {
  it("npm start serves, keeps the data where the postgres user can reach it and says where, and finds it again at the next start", async () => {
    const env = serviceEnv({ PORT: "0" });
    const first = startServiceProcess({ cwd: checkout, env, command: ["npm", "start"] });
    const address = await first.listening;
    const directory = trackRelocation(first);
    expect(directory).toMatch(new RegExp(`^${SYSTEM_STATE_DIR}/data/.+-[0-9a-f]{8}$`));
    const messages = first.lines.filter((line) => line.level === 40).map((line) => String(line.msg));
    expect(messages).toContain(
      `the postgres user cannot enter ${home} (mode 0700), so the embedded PostgreSQL keeps the data of DATA_DIR ${checkout}/.data in ${directory}`,
    );
    expect(messages.some((m) => m.startsWith(`the postgres user cannot enter ${home} (mode 0700), so the embedded PostgreSQL runs from a copy of its binaries in ${SYSTEM_STATE_DIR}/postgresql-`))).toBe(true);
    expect(first.lines.find((line) => String(line.msg).includes("listening"))?.database).toBe(`embedded (${directory})`);

    const tenant = await createTenancyClients({ baseUrl: `http://${address}`, protocol: "grpc" }).tenants.createTenant({
      tenant: { name: "First Run", domain: "first-run.example" },
    });
    // Ctrl-C: npm and the service both get SIGINT; the service shuts down in order, its PostgreSQL last.
    first.interrupt();
    await first.exited;
    expect(first.lines.at(-1)?.msg).toBe("stopped");
    expect(existsSync(path.join(directory!, "postmaster.pid"))).toBe(false);

    // What npm start runs once built: the same data, found again.
    const second = startServiceProcess({ cwd: checkout, env, command: [process.execPath, "dist/src/main.js"] });
    const again = await second.listening;
    expect(trackRelocation(second)).toBe(directory);
    const found = await createTenancyClients({ baseUrl: `http://${again}`, protocol: "connect" }).tenants.getTenant({ id: tenant.id });
    expect(found.name).toBe("First Run");
    second.child.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
    expect(stderrLines(first)).toEqual([]);
    expect(stderrLines(second)).toEqual([]);
  }, 240_000);

  it("npm test runs: its embedded PostgreSQL starts from binaries the postgres user can reach", async () => {
    const child = spawn("npm", ["test", "--", "test/unit/config.test.ts"], {
      cwd: checkout,
      env: serviceEnv({ NO_COLOR: "1" }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    const [code] = await once(child, "exit");
    expect(code, output).toBe(0);
    expect(output).toMatch(/Test Files\s+1 passed/);
  }, 180_000);

  it("a database already in an unreachable DATA_DIR stops the start with one line saying how to reach it", async () => {
    const dataDir = path.join(home, "old-data");
    await mkdir(path.join(dataDir, "postgres"), { recursive: true });
    await writeFile(path.join(dataDir, "postgres", "PG_VERSION"), "18\n");
    const service = startServiceProcess({ cwd: checkout, env: serviceEnv({ PORT: "0", DATA_DIR: dataDir }) });
    expect((await service.exited).code).toBe(1);
    expect(stderrLines(service)).toEqual([
      `tenancy failed to start: the embedded database in ${dataDir}/postgres is out of reach of the postgres user, which cannot enter ${home} (mode 0700): ` +
        `let it enter (chmod o+x ${home}), or set DATA_DIR to a directory it can reach`,
    ]);
  });
});
