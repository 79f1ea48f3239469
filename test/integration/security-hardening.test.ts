import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { createTenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

const tag = () => Math.random().toString(36).slice(2, 10);

describe("request size limits", () => {
  it("answers RESOURCE_EXHAUSTED to a message over 1 MiB, on every protocol, and keeps serving", async () => {
    const huge = { blob: "x".repeat(1024 * 1024 + 1) };
    const clients = [
      server.grpc,
      server.connect,
      createTenancyClients({ baseUrl: server.baseUrl, protocol: "grpc-web" }),
      createTenancyClients({ baseUrl: server.baseUrl, protocol: "connect", useBinaryFormat: true }),
    ];
    for (const client of clients) {
      const error = await rpcError(client.tenants.createTenant({ tenant: { name: `Big ${tag()}`, domain: `${tag()}.big.example`, params: huge } }));
      expect(error.code).toBe(Code.ResourceExhausted);
      // Still up, on the same client.
      const ok = await client.tenants.createTenant({ tenant: { name: `Small ${tag()}`, domain: `${tag()}.small.example` } });
      expect(ok.id).toBeTruthy();
    }
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE name LIKE 'Big %'`);
    expect(rows[0].n).toBe(0);
  });

  it("caps membership pages at 1000 and refuses negative page sizes", async () => {
    const tenant = await server.grpc.tenants.createTenant({ tenant: { name: `Crowd ${tag()}`, domain: `${tag()}.crowd.example` } });
    await server.sql.query(
      `INSERT INTO "UserTenantMapping" ("Id", "tenantId", "userId") SELECT gen_random_uuid(), $1, gen_random_uuid() FROM generate_series(1, 1001)`,
      [tenant.id],
    );
    const page = await server.grpc.memberships.listMemberships({ tenantId: tenant.id, pageSize: 2_147_483_647 });
    expect(page.memberships).toHaveLength(1000);
    expect(page.totalSize).toBe(1001);
    expect(page.nextPageToken).not.toBe("");
    expect(describeError(await rpcError(server.grpc.memberships.listMemberships({ pageSize: -2_147_483_648 })))).toEqual({
      code: "InvalidArgument",
      fields: ["page_size"],
    });
    expect(describeError(await rpcError(server.grpc.tenants.listTenants({ pageSize: -1 })))).toEqual({
      code: "InvalidArgument",
      fields: ["page_size"],
    });
  });
});

/**
 * Strings that would change a statement built by concatenation: quotes,
 * comments, statement separators, placeholders of several drivers, LIKE
 * wildcards and backslashes.
 */
const injections = [
  `'; DROP TABLE "Tenants"; --`,
  `Robert'); DELETE FROM "UserTenantMapping";--`,
  `" OR "1"="1`,
  `' OR ''='`,
  `1) OR (1=1`,
  `? ?? $1 :name`,
  `%_%`,
  `\\'; SELECT pg_sleep(10); --`,
  `$$; TRUNCATE "Tenants"; $$`,
  `*/ OR 1=1 /*`,
];

/** A filter string literal for any text. */
const literal = (text: string) => `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;

describe("SQL injection", () => {
  it("stores and finds names, params keys and values with injection strings literally", async () => {
    const { rows: before } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants"`);
    const created = [];
    for (const [i, evil] of injections.entries()) {
      const tenant = await server.grpc.tenants.createTenant({
        tenant: { name: `${evil} ${tag()}`, domain: `inj-${i}-${tag()}.example`, params: { [evil]: evil, nested: { [evil]: i } } },
      });
      expect(tenant.params?.[evil]).toBe(evil);
      created.push(tenant);

      // LookupTenant by name, exactly and ignoring case.
      expect((await server.grpc.tenants.lookupTenant({ key: { case: "name", value: tenant.name.toUpperCase() } })).id).toBe(tenant.id);
      // The filter: on name, on a params key, inside a has (`:`) pattern.
      const byName = await server.grpc.tenants.listTenants({ filter: `name = ${literal(tenant.name)}` });
      expect(byName.tenants.map((t) => t.id)).toEqual([tenant.id]);
      const byKey = await server.grpc.tenants.listTenants({ filter: `params.\`${evil}\` = ${literal(evil)} AND name = ${literal(tenant.name)}` });
      expect(byKey.tenants.map((t) => t.id)).toEqual([tenant.id]);
      const byNested = await server.grpc.tenants.listTenants({ filter: `params.nested.\`${evil}\` = ${i} AND name = ${literal(tenant.name)}` });
      expect(byNested.tenants.map((t) => t.id)).toEqual([tenant.id]);
      const has = await server.grpc.tenants.listTenants({ filter: `name:${literal(evil)}` });
      expect(has.tenants.map((t) => t.id)).toContain(tenant.id);
      expect(has.tenants.every((t) => t.name.toLowerCase().includes(evil.toLowerCase()))).toBe(true);

      // Update of a params key named by the injection, through the mask.
      const updated = await server.grpc.tenants.updateTenant({
        tenant: { id: tenant.id, params: { [evil]: "changed" } },
        updateMask: { paths: [`params.\`${evil.replace(/`/g, "``")}\``] },
      });
      expect(updated.params?.[evil]).toBe("changed");
    }
    const { rows } = await server.sql.query(`SELECT name, params FROM "Tenants" WHERE tenant_id = ANY($1::uuid[]) ORDER BY name`, [
      created.map((t) => t.id),
    ]);
    expect(rows).toHaveLength(injections.length);
    const { rows: after } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants"`);
    expect(after[0].n).toBe(before[0].n + injections.length);
  });

  it("refuses injection strings as domains, ids and filters with INVALID_ARGUMENT, never more", async () => {
    for (const evil of injections) {
      expect((await rpcError(server.grpc.tenants.createTenant({ tenant: { name: `D ${tag()}`, domain: evil } }))).code).toBe(Code.InvalidArgument);
      expect((await rpcError(server.grpc.tenants.lookupTenant({ key: { case: "domain", value: evil } }))).code).toBe(Code.InvalidArgument);
      expect((await rpcError(server.grpc.tenants.getTenant({ id: evil }))).code).toBe(Code.InvalidArgument);
      expect((await rpcError(server.grpc.memberships.listMemberships({ tenantId: evil }))).code).toBe(Code.InvalidArgument);
      expect((await rpcError(server.grpc.tenants.listTenants({ filter: evil }))).code).toBe(Code.InvalidArgument);
      expect((await rpcError(server.grpc.tenants.listTenants({ orderBy: evil }))).code).toBe(Code.InvalidArgument);
    }
    const { rows } = await server.sql.query(`SELECT to_regclass('"Tenants"') AS t, to_regclass('"UserTenantMapping"') AS m`);
    expect(rows[0]).toEqual({ t: "\"Tenants\"", m: "\"UserTenantMapping\"" });
  });
});
