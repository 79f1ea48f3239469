import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { createTenancyClients } from "../../src/client.js";
import { createTestDatabase } from "../support/database.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";
import { rpcError } from "../support/errors.js";

/**
 * A CreateTenant of about 2 MB (over MAX_MESSAGE_BYTES), sent with the
 * typed client from its own process, as a user would: the client gets
 * RESOURCE_EXHAUSTED and its process exits; the refusal is in the access
 * log and the metrics; and a SIGTERM right after is quick, though the
 * grace period is long.
 */
const GRACE_MS = 120_000;

let database: { url: string; drop(): Promise<void> };
let server: ServerProcess | undefined;
beforeAll(async () => {
  database = await createTestDatabase(inject("databaseServerUrl"));
  server = await startServerProcess({ DATABASE_URL: database.url, SHUTDOWN_GRACE_MS: String(GRACE_MS) });
});
afterAll(async () => {
  await server?.stop("SIGKILL");
  await database?.drop();
});

const clientScript = `
import { createTenancyClients } from "./src/client.ts";
const [baseUrl, protocol, httpVersion] = process.argv.slice(1);
const { tenants } = createTenancyClients({ baseUrl, protocol, httpVersion });
try {
  await tenants.createTenant({ tenant: { name: "Big", domain: "big.example", params: { blob: "x".repeat(2 * 1024 * 1024) } } });
  console.log(JSON.stringify({ code: 0 }));
} catch (error) {
  console.log(JSON.stringify({ code: error.code, message: error.rawMessage }));
}
`;

/** Runs the typed client in its own process; resolves once that process has exited by itself. */
async function oversizedCallFromAnotherProcess(protocol: string, httpVersion: string) {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", clientScript, `http://${server!.address}`, protocol, httpVersion], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const [exitCode] = await once(child, "exit");
  return { exitCode, answer: out.trim() ? JSON.parse(out.trim()) : err };
}

const wires = [
  ["grpc", "2"],
  ["connect", "2"],
  ["grpc-web", "2"],
  ["connect", "1.1"],
  ["grpc-web", "1.1"],
] as const;

describe("an oversized request", () => {
  it.each(wires)("over %s on HTTP/%s: the client gets RESOURCE_EXHAUSTED and its process exits", async (protocol, httpVersion) => {
    const { exitCode, answer } = await oversizedCallFromAnotherProcess(protocol, httpVersion);
    expect(answer).toMatchObject({ code: Code.ResourceExhausted });
    expect(exitCode).toBe(0);
  });

  it("is in the access log and in tenancy_rpc_requests_total, by protocol", async () => {
    const refused = server!.lines.filter((l) => l.msg === "rpc" && l.procedure === "tenancy.v1.TenantService/CreateTenant" && l.code === "ResourceExhausted");
    expect(refused.map((l) => l.protocol).sort()).toEqual(["connect", "connect", "grpc", "grpc-web", "grpc-web"]);
    const metrics = await (await fetch(`http://${server!.address}/metrics`)).text();
    expect(metrics).toContain(`tenancy_rpc_requests_total{procedure="tenancy.v1.TenantService/CreateTenant",code="ResourceExhausted"} ${wires.length}`);
  });

  it("does not hold up a SIGTERM that comes right after it, while its client keeps its connection", async () => {
    // This process's clients keep their HTTP/2 connections open after the call.
    for (const protocol of ["grpc", "connect", "grpc-web"] as const) {
      const { tenants } = createTenancyClients({ baseUrl: `http://${server!.address}`, protocol, httpVersion: "2" });
      const error = await rpcError(tenants.createTenant({ tenant: { name: "Big", domain: "big.example", params: { blob: "x".repeat(2 * 1024 * 1024) } } }));
      expect(error.code).toBe(Code.ResourceExhausted);
    }
    // Waiting the grace period (two minutes) would time this test out.
    expect(await server!.stop("SIGTERM")).toBe(0);
    expect(server!.lines.at(-1)).toMatchObject({ msg: "stopped" });
  });
});
