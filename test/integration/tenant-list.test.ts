import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import type { Tenant } from "../../src/client.js";

let server: TestServer;
/** Tenants created for the filter tests, by short key. */
const fixtures: Record<string, Tenant> = {};

beforeAll(async () => {
  server = await startTestServer();
  const specs: Array<[string, string, string, Record<string, unknown>]> = [
    ["alpha", "Alpha School", "alpha.edu.example", { plan: "pro", seats: 120, active: true, region: { code: "eu-west" } }],
    ["beta", "Beta Academy", "beta.edu.example", { plan: "free", seats: 5, active: false }],
    ["gamma", "Gamma 100% Learning_", "gamma.learn.example", { plan: "Pro", seats: 42.5, "odd key": "yes", tags: ["a"] }],
    ["delta", "delta institute", "xn--bcher-kva.example", { plan: 7, seats: "many" }],
    ["epsilon", "Epsilon", "epsilon.edu.example", {}],
  ];
  for (const [key, name, domain, params] of specs) {
    fixtures[key] = await server.grpc.tenants.createTenant({ tenant: { name, domain, params: params as never } });
    await new Promise((r) => setTimeout(r, 3));
  }
});
afterAll(async () => {
  await server?.close();
});

async function names(filter: string, orderBy = "") {
  const res = await server.connect.tenants.listTenants({ filter, orderBy, pageSize: 1000 });
  return res.tenants.map((t) => t.name);
}

describe("ListTenants filter", () => {
  it.each([
    ['name = "alpha school"', ["Alpha School"]],
    ['name != "ALPHA SCHOOL"', ["Beta Academy", "Gamma 100% Learning_", "delta institute", "Epsilon"]],
    ["name:academy", ["Beta Academy"]],
    ['name:"100%"', ["Gamma 100% Learning_"]],
    ['name:"_"', ["Gamma 100% Learning_"]],
    ['name > "D"', ["Gamma 100% Learning_", "delta institute", "Epsilon"]],
    ['domain:".EDU."', ["Alpha School", "Beta Academy", "Epsilon"]],
    ['domain = "Bücher.example."', ["delta institute"]],
    ['params.plan = "pro"', ["Alpha School"]],
    ['params.plan:"pro"', ["Alpha School", "Gamma 100% Learning_"]],
    ["params.plan = 7", ["delta institute"]],
    ["params.seats > 40", ["Alpha School", "Gamma 100% Learning_"]],
    ["params.seats <= 42.5", ["Beta Academy", "Gamma 100% Learning_"]],
    ["params.active = true", ["Alpha School"]],
    ["params.active != true", ["Beta Academy"]],
    ['params.region.code = "eu-west"', ["Alpha School"]],
    ['params.`odd key` = "yes"', ["Gamma 100% Learning_"]],
    ["params.seats:*", ["Alpha School", "Beta Academy", "Gamma 100% Learning_", "delta institute"]],
    ['params.plan = "pro" OR params.plan = "free"', ["Alpha School", "Beta Academy"]],
    ['domain:edu AND params.seats < 100', ["Beta Academy"]],
    ['domain:edu params.seats < 100', ["Beta Academy"]],
    ['NOT domain:edu', ["Gamma 100% Learning_", "delta institute"]],
    ['-domain:edu AND name:delta', ["delta institute"]],
    ['(name:alpha OR name:beta) AND params.active = false', ["Beta Academy"]],
    ['name:a AND name:l OR name:x', ["Alpha School", "Gamma 100% Learning_", "delta institute"]],
  ])("%s", async (filter, expected) => {
    expect(await names(filter)).toEqual(expected);
  });

  it("filters on timestamps", async () => {
    const gamma = fixtures.gamma!;
    const at = new Date(Number(gamma.createTime!.seconds) * 1000 + gamma.createTime!.nanos / 1e6).toISOString();
    expect(await names(`create_time >= "${at}"`)).toEqual(["Gamma 100% Learning_", "delta institute", "Epsilon"]);
    expect(await names(`create_time < "${at}" AND update_time < "2999-01-01T00:00:00Z"`)).toEqual(["Alpha School", "Beta Academy"]);
  });

  it("treats injection attempts as plain values", async () => {
    for (const filter of [
      `name = "x'; DROP TABLE \\"Tenants\\"; --"`,
      `params.\`a'); DELETE FROM "Tenants"; --\` = 1`,
      `domain:"%' OR '1'='1"`,
    ]) {
      expect(await names(filter)).toEqual([]);
    }
    expect(await names("")).toHaveLength(5);
  });

  it.each([
    ["nmae = 1", 1],
    ['name = "open', 8],
    ["name =", 7],
    ["(name:a", 8],
    ["name:a)", 7],
    ['create_time > "yesterday"', 15],
    ["params.active < true", 15],
    ["name = 5", 8],
    ["params = 1", 1],
  ])("refuses %s with INVALID_ARGUMENT naming position %i", async (filter, position) => {
    const error = await rpcError(server.connect.tenants.listTenants({ filter }));
    expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["filter"] });
    expect(error.rawMessage).toContain(`position ${position}`);
  });
});

describe("ListTenants order and pages", () => {
  it("orders by the requested fields, ties broken by id", async () => {
    expect(await names("domain:example", "name")).toEqual(
      ["Alpha School", "Beta Academy", "Epsilon", "Gamma 100% Learning_", "delta institute"],
    );
    expect(await names("domain:example", "domain desc")).toEqual(
      ["delta institute", "Gamma 100% Learning_", "Epsilon", "Beta Academy", "Alpha School"],
    );
    expect(await names("domain:example", "create_time desc")).toEqual(
      ["Epsilon", "delta institute", "Gamma 100% Learning_", "Beta Academy", "Alpha School"],
    );
    expect(await names("", "update_time, name desc")).toHaveLength(5);
  });

  // The names of Object.prototype's members once reached SQL as "ORDER BY undefined" (found by the fuzz test).
  it.each(["colour", "name sideways", "name, name", "name desc extra", "params.plan", "toString", "constructor desc", "__proto__", "hasOwnProperty"])(
    "refuses order_by %s",
    async (orderBy) => {
      const error = await rpcError(server.connect.tenants.listTenants({ orderBy }));
      expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["order_by"] });
    },
  );

  it("refuses a negative page size and a token from another filter or order", async () => {
    expect(describeError(await rpcError(server.connect.tenants.listTenants({ pageSize: -5 })))).toEqual({
      code: "InvalidArgument",
      fields: ["page_size"],
    });
    const first = await server.connect.tenants.listTenants({ pageSize: 2, filter: "domain:example" });
    expect(first.nextPageToken).not.toBe("");
    expect(first.totalSize).toBe(5);
    for (const other of [{ filter: "domain:edu" }, { filter: "domain:example", orderBy: "name" }]) {
      const error = await rpcError(server.connect.tenants.listTenants({ pageSize: 2, pageToken: first.nextPageToken, ...other }));
      expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["page_token"] });
    }
    const forged = Buffer.from(JSON.stringify({ v: 1, q: JSON.parse(Buffer.from(first.nextPageToken, "base64url").toString()).q, k: ["not-a-number", crypto.randomUUID()] })).toString("base64url");
    const error = await rpcError(server.connect.tenants.listTenants({ pageSize: 2, pageToken: forged, filter: "domain:example" }));
    expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["page_token"] });
  });

  it("defaults to 50 per page and caps at 1000", async () => {
    await server.sql.query(
      `INSERT INTO "Tenants" (tenant_id, name, domain, params)
       SELECT gen_random_uuid(), 'bulk ' || i, 'bulk-' || i || '.bulk.example', '{}'::jsonb FROM generate_series(1, 1005) AS i`,
    );
    const byDefault = await server.grpc.tenants.listTenants({ filter: "domain:bulk.example" });
    expect(byDefault.tenants).toHaveLength(50);
    expect(byDefault.totalSize).toBe(1005);
    const capped = await server.grpc.tenants.listTenants({ filter: "domain:bulk.example", pageSize: 5000 });
    expect(capped.tenants).toHaveLength(1000);
    const rest = await server.grpc.tenants.listTenants({ filter: "domain:bulk.example", pageSize: 5000, pageToken: capped.nextPageToken });
    expect(rest.tenants).toHaveLength(5);
    expect(rest.nextPageToken).toBe("");
    await server.sql.query(`DELETE FROM "Tenants" WHERE domain LIKE '%.bulk.example'`);
  });

  it.each(["", "name desc", "update_time desc, domain"])(
    "walks every page under concurrent inserts without repeating or skipping a row (order_by %j)",
    async (orderBy) => {
      const prefix = `walk${Math.random().toString(36).slice(2, 7)}`;
      // Same-microsecond timestamps are the hard case for keyset pagination.
      await server.sql.query(
        `INSERT INTO "Tenants" (tenant_id, name, domain, created_at, updated_at)
         SELECT gen_random_uuid(), $1 || ' ' || ((i * 7919) % 1000), $1 || '-' || i || '.walk.example',
                timestamptz '2026-01-01' + (i % 5) * interval '1 microsecond', now()
           FROM generate_series(1, 180) AS i`,
        [prefix],
      );
      const { rows } = await server.sql.query(`SELECT tenant_id FROM "Tenants" WHERE domain LIKE $1`, [`${prefix}-%`]);
      const existing = new Set(rows.map((r) => r.tenant_id as string));
      const filter = `domain:"${prefix}-"`;
      const seen: string[] = [];
      let pageToken = "";
      let inserted = 0;
      do {
        const page = await server.grpc.tenants.listTenants({ filter, orderBy, pageSize: 7, pageToken });
        seen.push(...page.tenants.map((t) => t.id));
        pageToken = page.nextPageToken;
        await Promise.all(
          [0, 1].map(() => {
            inserted += 1;
            return server.connect.tenants.createTenant({
              tenant: { name: `${prefix} new ${inserted}`, domain: `${prefix}-new${inserted}.walk.example` },
            });
          }),
        );
      } while (pageToken);
      expect(new Set(seen).size).toBe(seen.length);
      const missing = [...existing].filter((id) => !seen.includes(id));
      expect(missing).toEqual([]);
    },
  );
});
