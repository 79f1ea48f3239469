import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/health/v1/health_pb.js";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/database/embedded-postgres.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { rpcError } from "../support/errors.js";

/**
 * This file runs its own PostgreSQL, because it stops and restarts it under
 * the running service.
 */
let dataDir: string;
let db: EmbeddedDatabase;
let port: number;
let server: TestServer;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-health-"));
  db = await startEmbeddedPostgres({ dataDir, database: "postgres" });
  port = Number(new URL(db.url).port);
  server = await startTestServer({ databaseServerUrl: db.url, healthIntervalMs: 100 });
});
afterAll(async () => {
  await server?.close();
  await db?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function until<T>(read: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("grpc.health.v1.Health", () => {
  it("answers SERVING for the server and each service, NOT_FOUND for unknown names", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    for (const service of ["", "tenancy.v1.TenantService", "tenancy.v1.MembershipService", "tenancy.v1.EventService", "tenancy.v1.ParamsSchemaService"]) {
      expect((await health.check({ service })).status).toBe(Status.SERVING);
    }
    expect((await rpcError(health.check({ service: "tenancy.v1.Nope" }))).code).toBe(Code.NotFound);
    const list = await health.list({});
    expect(Object.keys(list.statuses).sort()).toEqual([
      "",
      "tenancy.v1.EventService",
      "tenancy.v1.MembershipService",
      "tenancy.v1.ParamsSchemaService",
      "tenancy.v1.TenantService",
    ]);
    const ready = await fetch(`${server.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "SERVING" });
    expect((await fetch(`${server.baseUrl}/healthz`)).status).toBe(200);
  });

  it("goes NOT_SERVING while the database is down and SERVING when it is back, streaming the change on Watch", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    const abort = new AbortController();
    const seen: Status[] = [];
    const watching = (async () => {
      try {
        for await (const res of health.watch({ service: "tenancy.v1.TenantService" }, { signal: abort.signal })) {
          seen.push(res.status);
        }
      } catch {
        // aborted at the end of the test
      }
    })();
    await until(async () => seen.length, (n) => n > 0);
    expect(seen).toEqual([Status.SERVING]);

    await db.stop();
    const down = await until(() => health.check({ service: "" }).then((r) => r.status), (s) => s === Status.NOT_SERVING);
    expect(down).toBe(Status.NOT_SERVING);
    const readyDown = await fetch(`${server.baseUrl}/readyz`);
    expect(readyDown.status).toBe(503);
    // RPCs that need the database fail fast and say so: UNAVAILABLE, not INTERNAL.
    const started = Date.now();
    const error = await rpcError(server.grpc.tenants.getTenant({ id: crypto.randomUUID() }));
    expect(Code[error.code]).toBe("Unavailable");
    expect(Date.now() - started).toBeLessThan(10_000);

    db = await startEmbeddedPostgres({ dataDir, port, database: "postgres" });
    const up = await until(() => health.check({ service: "" }).then((r) => r.status), (s) => s === Status.SERVING);
    expect(up).toBe(Status.SERVING);
    // ...and the service works again without a restart.
    const tag = Math.random().toString(36).slice(2, 8);
    const created = await until(
      () => server.grpc.tenants.createTenant({ tenant: { name: `Back ${tag}`, domain: `${tag}.back.example` } }).catch(() => undefined),
      (t) => t !== undefined,
    );
    expect(created?.name).toBe(`Back ${tag}`);

    await until(async () => seen.length, (n) => n >= 3);
    abort.abort();
    await watching;
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING, Status.SERVING]);
  });

  it("ends Watch streams with NOT_SERVING when the server shuts down", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    const seen: Status[] = [];
    const watching = (async () => {
      for await (const res of health.watch({ service: "" })) seen.push(res.status);
      return "ended";
    })();
    await until(async () => seen.length, (n) => n > 0);
    server.health.stop();
    const outcome = await Promise.race([watching, new Promise((r) => setTimeout(() => r("still open"), 5_000))]);
    expect(outcome).toBe("ended");
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING]);
  });
});
