import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { describeError, rpcError } from "../support/errors.js";
import { Tenant_State } from "../../src/client.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

let counter = 0;
/** A tenant name and domain no other test uses. */
function unique(prefix = "t") {
  counter += 1;
  const tag = `${prefix}${counter}-${Math.random().toString(36).slice(2, 8)}`;
  return { name: `Tenant ${tag}`, domain: `${tag}.example.com` };
}

describe("CreateTenant", () => {
  it("creates a tenant with server-assigned id, times and etag", async () => {
    const input = unique();
    const created = await server.connect.tenants.createTenant({
      tenant: { ...input, params: { plan: "pro", seats: 10, nested: { on: true } }, id: "ignored" },
    });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.name).toBe(input.name);
    expect(created.domain).toBe(input.domain);
    expect(created.params).toEqual({ plan: "pro", seats: 10, nested: { on: true } });
    expect(created.createTime).toBeDefined();
    expect(created.updateTime).toEqual(created.createTime);
    expect(created.etag).not.toBe("");
    const { rows } = await server.sql.query(`SELECT name, domain, params FROM "Tenants" WHERE tenant_id = $1`, [created.id]);
    expect(rows).toEqual([{ name: input.name, domain: input.domain, params: created.params }]);
  });

  it("trims the name and normalizes the domain (case, trailing dot, IDN to punycode)", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const created = await server.grpc.tenants.createTenant({
      tenant: { name: `  Bücher ${tag}  `, domain: `Bücher-${tag}.Example.` },
    });
    expect(created.name).toBe(`Bücher ${tag}`);
    expect(created.domain).toMatch(/^xn--bcher-.*\.example$/);
    const looked = await server.grpc.tenants.lookupTenant({ key: { case: "domain", value: `BÜCHER-${tag}.example` } });
    expect(looked.id).toBe(created.id);
    const byPunycode = await server.grpc.tenants.lookupTenant({ key: { case: "domain", value: `${created.domain}.` } });
    expect(byPunycode.id).toBe(created.id);
  });

  it("treats an unset params as an empty object", async () => {
    const created = await server.connect.tenants.createTenant({ tenant: unique() });
    expect(created.params).toEqual({});
  });

  it.each([
    ["an empty name", { name: "   " }, ["tenant.name"]],
    ["a name over 255 characters", { name: "x".repeat(256) }, ["tenant.name"]],
    ["a name with control characters", { name: "bad\u0007name" }, ["tenant.name"]],
    ["an empty domain", { domain: "" }, ["tenant.domain"]],
    ["a domain with an underscore", { domain: "a_b.example.com" }, ["tenant.domain"]],
    ["a domain with a leading hyphen label", { domain: "-ab.example.com" }, ["tenant.domain"]],
    ["a domain label over 63 characters", { domain: `${"a".repeat(64)}.com` }, ["tenant.domain"]],
    ["a domain over 253 characters", { domain: `${"abcdefghi.".repeat(26)}com` }, ["tenant.domain"]],
    ["an IP address as domain", { domain: "10.0.0.1" }, ["tenant.domain"]],
    ["a domain with empty labels", { domain: "a..b.com" }, ["tenant.domain"]],
    ["malformed punycode", { domain: "xn--zz.com" }, ["tenant.domain"]],
    ["both name and domain bad", { name: "", domain: "not a domain" }, ["tenant.name", "tenant.domain"]],
  ])("refuses %s with INVALID_ARGUMENT naming the field", async (_label, override, fields) => {
    const error = await rpcError(server.connect.tenants.createTenant({ tenant: { ...unique(), ...override } }));
    expect(describeError(error)).toEqual({ code: "InvalidArgument", fields });
  });

  it("accepts a 255-character name and a 253-character domain", async () => {
    const tag = Math.random().toString(36).slice(2, 8);
    const name = `${tag}${"n".repeat(255 - tag.length)}`;
    const domain = `${tag}${"a".repeat(63 - tag.length)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`;
    expect(domain.length).toBe(253);
    const created = await server.connect.tenants.createTenant({ tenant: { name, domain } });
    expect(created.name).toBe(name);
    expect(created.domain).toBe(domain);
  });

  it("refuses params over 64 KiB, with non-finite numbers, or nested too deep", async () => {
    const big = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { blob: "x".repeat(65_536) } } }));
    expect(describeError(big)).toEqual({ code: "InvalidArgument", fields: ["tenant.params"] });
    const nan = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { n: Number.NaN } } }));
    expect(describeError(nan)).toEqual({ code: "InvalidArgument", fields: ["tenant.params.n"] });
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 40; i++) deep = { d: deep };
    const tooDeep = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), params: deep as never } }));
    expect(tooDeep.code).toBe(Code.InvalidArgument);
    const nul = await rpcError(server.grpc.tenants.createTenant({ tenant: { ...unique(), params: { s: "a\u0000b" } } }));
    expect(describeError(nul)).toEqual({ code: "InvalidArgument", fields: ["tenant.params.s"] });
  });

  it("refuses a missing tenant and a request_id that is not a UUID", async () => {
    expect(describeError(await rpcError(server.connect.tenants.createTenant({})))).toEqual({
      code: "InvalidArgument",
      fields: ["tenant"],
    });
    const error = await rpcError(server.connect.tenants.createTenant({ tenant: unique(), requestId: "nope" }));
    expect(describeError(error)).toEqual({ code: "InvalidArgument", fields: ["request_id"] });
  });

  it("refuses a name taken in another case and a taken domain, with stable reasons", async () => {
    const first = await server.connect.tenants.createTenant({ tenant: unique() });
    const sameName = await rpcError(
      server.connect.tenants.createTenant({ tenant: { name: first.name.toUpperCase(), domain: unique().domain } }),
    );
    expect(describeError(sameName)).toEqual({ code: "AlreadyExists", reason: "TENANT_NAME_TAKEN" });
    const sameDomain = await rpcError(
      server.connect.tenants.createTenant({ tenant: { name: unique().name, domain: first.domain.toUpperCase() + "." } }),
    );
    expect(describeError(sameDomain)).toEqual({ code: "AlreadyExists", reason: "TENANT_DOMAIN_TAKEN" });
  });

  it("lets exactly one of many concurrent creates of the same name win", async () => {
    const { name } = unique("race");
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        server.grpc.tenants.createTenant({ tenant: { name: i % 2 ? name : name.toLowerCase(), domain: unique().domain } }),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect(describeError(await rpcError(Promise.reject(r.reason)))).toEqual({
        code: "AlreadyExists",
        reason: "TENANT_NAME_TAKEN",
      });
    }
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE lower(name) = lower($1)`, [name]);
    expect(rows[0].n).toBe(1);
  });

  it("lets exactly one of many concurrent creates of the same domain win", async () => {
    const { domain } = unique("race");
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () => server.grpc.tenants.createTenant({ tenant: { name: unique().name, domain } })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "Tenants" WHERE domain = $1`, [domain]);
    expect(rows[0].n).toBe(1);
  });
});

describe("GetTenant and LookupTenant", () => {
  it("gets by id and looks up by domain and by name, case-insensitively", async () => {
    const input = unique();
    const created = await server.connect.tenants.createTenant({ tenant: input });
    expect((await server.connect.tenants.getTenant({ id: created.id })).name).toBe(input.name);
    expect((await server.connect.tenants.getTenant({ id: created.id.toUpperCase() })).id).toBe(created.id);
    const byName = await server.connect.tenants.lookupTenant({ key: { case: "name", value: `  ${input.name.toUpperCase()} ` } });
    expect(byName.id).toBe(created.id);
    const byDomain = await server.connect.tenants.lookupTenant({ key: { case: "domain", value: input.domain.toUpperCase() } });
    expect(byDomain.id).toBe(created.id);
  });

  it("answers NOT_FOUND for an unknown id, domain or name", async () => {
    const expected = { code: "NotFound", reason: "TENANT_NOT_FOUND" };
    expect(describeError(await rpcError(server.connect.tenants.getTenant({ id: crypto.randomUUID() })))).toEqual(expected);
    expect(
      describeError(await rpcError(server.connect.tenants.lookupTenant({ key: { case: "domain", value: "nowhere.example.org" } }))),
    ).toEqual(expected);
    expect(
      describeError(await rpcError(server.connect.tenants.lookupTenant({ key: { case: "name", value: "Nobody at all" } }))),
    ).toEqual(expected);
    expect(
      describeError(await rpcError(server.connect.tenants.lookupTenant({ key: { case: "name", value: "x".repeat(300) } }))),
    ).toEqual(expected);
  });

  it("answers INVALID_ARGUMENT for a malformed id, a bad domain or no key", async () => {
    for (const id of ["", "42", "not-a-uuid", "' OR 1=1 --"]) {
      expect(describeError(await rpcError(server.grpc.tenants.getTenant({ id })))).toEqual({ code: "InvalidArgument", fields: ["id"] });
    }
    expect(
      describeError(await rpcError(server.grpc.tenants.lookupTenant({ key: { case: "domain", value: "bad domain!" } }))),
    ).toEqual({ code: "InvalidArgument", fields: ["domain"] });
    expect(describeError(await rpcError(server.grpc.tenants.lookupTenant({})))).toEqual({ code: "InvalidArgument", fields: ["key"] });
  });
});

describe("UpdateTenant", () => {
  async function fresh(params: Record<string, unknown> = {}) {
    return server.grpc.tenants.createTenant({ tenant: { ...unique("u"), params: params as never } });
  }

  it("updates the name and domain named in the mask, changes etag and update_time, keeps create_time", async () => {
    const before = await fresh({ a: 1 });
    await new Promise((r) => setTimeout(r, 5));
    const next = unique("renamed");
    const after = await server.grpc.tenants.updateTenant({
      tenant: { id: before.id, name: next.name, domain: `${next.domain.toUpperCase()}.`, params: { ignored: true } },
      updateMask: { paths: ["name", "domain"] },
    });
    expect(after.name).toBe(next.name);
    expect(after.domain).toBe(next.domain);
    expect(after.params).toEqual({ a: 1 });
    expect(after.etag).not.toBe(before.etag);
    expect(after.createTime).toEqual(before.createTime);
    expect(Number(after.updateTime!.seconds) * 1e3 + after.updateTime!.nanos / 1e6).toBeGreaterThan(
      Number(before.updateTime!.seconds) * 1e3 + before.updateTime!.nanos / 1e6,
    );
  });

  it("with an empty mask updates every field the request sets", async () => {
    const before = await fresh({ keep: "no" });
    const after = await server.connect.tenants.updateTenant({ tenant: { id: before.id, params: { replaced: true } } });
    expect(after.name).toBe(before.name);
    expect(after.domain).toBe(before.domain);
    expect(after.params).toEqual({ replaced: true });
  });

  it("sets and removes nested params keys without touching the others", async () => {
    const before = await fresh({ plan: "free", limits: { seats: 5, storage: 10 }, theme: "dark" });
    const after = await server.grpc.tenants.updateTenant({
      tenant: { id: before.id, params: { limits: { seats: 50 }, feature: { beta: { on: true } } } },
      updateMask: { paths: ["params.limits.seats", "params.theme", "params.feature.beta.on", "params.`odd.key`"] },
    });
    expect(after.params).toEqual({ plan: "free", limits: { seats: 50, storage: 10 }, feature: { beta: { on: true } } });
  });

  it("replaces a non-object on the way to a nested key", async () => {
    const before = await fresh({ limits: 3 });
    const after = await server.grpc.tenants.updateTenant({
      tenant: { id: before.id, params: { limits: { seats: 1 } } },
      updateMask: { paths: ["params.limits.seats"] },
    });
    expect(after.params).toEqual({ limits: { seats: 1 } });
  });

  it("refuses unknown and output-only paths, and invalid new values", async () => {
    const before = await fresh();
    const unknownPath = await rpcError(
      server.grpc.tenants.updateTenant({ tenant: { id: before.id, name: "x" }, updateMask: { paths: ["name", "colour"] } }),
    );
    expect(describeError(unknownPath)).toEqual({ code: "InvalidArgument", fields: ["update_mask.paths[1]"] });
    const outputOnly = await rpcError(
      server.grpc.tenants.updateTenant({ tenant: { id: before.id }, updateMask: { paths: ["create_time"] } }),
    );
    expect(describeError(outputOnly)).toEqual({ code: "InvalidArgument", fields: ["update_mask.paths[0]"] });
    const badName = await rpcError(
      server.grpc.tenants.updateTenant({ tenant: { id: before.id, name: "" }, updateMask: { paths: ["name"] } }),
    );
    expect(describeError(badName)).toEqual({ code: "InvalidArgument", fields: ["tenant.name"] });
    const nothing = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: before.id } }));
    expect(describeError(nothing)).toEqual({ code: "InvalidArgument", fields: ["update_mask"] });
    const badId = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: "x", name: "y" } }));
    expect(describeError(badId)).toEqual({ code: "InvalidArgument", fields: ["tenant.id"] });
  });

  it("answers ABORTED for a stale etag and accepts the current one", async () => {
    const before = await fresh();
    const first = await server.grpc.tenants.updateTenant({
      tenant: { id: before.id, params: { v: 1 }, etag: before.etag },
      updateMask: { paths: ["params"] },
    });
    const stale = await rpcError(
      server.grpc.tenants.updateTenant({ tenant: { id: before.id, params: { v: 2 }, etag: before.etag }, updateMask: { paths: ["params"] } }),
    );
    expect(describeError(stale)).toEqual({ code: "Aborted", reason: "ETAG_MISMATCH" });
    expect((await server.grpc.tenants.getTenant({ id: before.id })).params).toEqual({ v: 1 });
    const second = await server.grpc.tenants.updateTenant({
      tenant: { id: before.id, params: { v: 2 }, etag: first.etag },
      updateMask: { paths: ["params"] },
    });
    expect(second.params).toEqual({ v: 2 });
  });

  it("answers NOT_FOUND for an unknown tenant and ALREADY_EXISTS for a taken name", async () => {
    const missing = await rpcError(
      server.grpc.tenants.updateTenant({ tenant: { id: crypto.randomUUID(), name: "whatever" } }),
    );
    expect(describeError(missing)).toEqual({ code: "NotFound", reason: "TENANT_NOT_FOUND" });
    const a = await fresh();
    const b = await fresh();
    const taken = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: b.id, name: a.name.toLowerCase() } }));
    expect(describeError(taken)).toEqual({ code: "AlreadyExists", reason: "TENANT_NAME_TAKEN" });
    const takenDomain = await rpcError(server.grpc.tenants.updateTenant({ tenant: { id: b.id, domain: a.domain } }));
    expect(describeError(takenDomain)).toEqual({ code: "AlreadyExists", reason: "TENANT_DOMAIN_TAKEN" });
  });

  it("never loses concurrent updates of different params keys", async () => {
    const before = await fresh({ base: true });
    const keys = Array.from({ length: 16 }, (_, i) => `k${i}`);
    await Promise.all(
      keys.map((key, i) =>
        (i % 2 ? server.grpc : server.connect).tenants.updateTenant({
          tenant: { id: before.id, params: { [key]: i } },
          updateMask: { paths: [`params.${key}`] },
        }),
      ),
    );
    const after = await server.grpc.tenants.getTenant({ id: before.id });
    expect(after.params).toEqual({ base: true, ...Object.fromEntries(keys.map((k, i) => [k, i])) });
  });
});

describe("DeleteTenant", () => {
  it("soft-deletes: returns the tenant as deleted, hides it from lookups, keeps it readable", async () => {
    const created = await server.connect.tenants.createTenant({ tenant: { ...unique("d"), params: { x: 1 } } });
    const deleted = await server.connect.tenants.deleteTenant({ id: created.id });
    expect(deleted).toMatchObject({ id: created.id, name: created.name, domain: created.domain, params: { x: 1 }, state: Tenant_State.DELETED });
    const deletedAt = Number(deleted.deleteTime!.seconds);
    expect(Math.abs(deletedAt - Date.now() / 1000)).toBeLessThan(60);
    expect(Number(deleted.purgeTime!.seconds) - deletedAt).toBe(30 * 24 * 3600);
    expect(deleted.etag).not.toBe(created.etag);
    expect(await server.connect.tenants.getTenant({ id: created.id })).toEqual(deleted);
    expect(
      describeError(await rpcError(server.connect.tenants.lookupTenant({ key: { case: "domain", value: created.domain } }))),
    ).toEqual({ code: "NotFound", reason: "TENANT_NOT_FOUND" });
    expect(describeError(await rpcError(server.connect.tenants.deleteTenant({ id: created.id })))).toEqual({
      code: "FailedPrecondition",
      reason: "TENANT_DELETED",
    });
    expect(describeError(await rpcError(server.connect.tenants.deleteTenant({ id: crypto.randomUUID() })))).toEqual({
      code: "NotFound",
      reason: "TENANT_NOT_FOUND",
    });
  });

  it("refuses a tenant with memberships unless forced, which removes them too", async () => {
    const created = await server.grpc.tenants.createTenant({ tenant: unique("d") });
    await server.grpc.memberships.createMembership({ membership: { tenantId: created.id, userId: crypto.randomUUID() } });
    await server.grpc.memberships.createMembership({ membership: { tenantId: created.id, userId: crypto.randomUUID() } });
    const refused = await rpcError(server.grpc.tenants.deleteTenant({ id: created.id }));
    expect(describeError(refused)).toEqual({ code: "FailedPrecondition", reason: "TENANT_HAS_MEMBERSHIPS" });
    await server.grpc.tenants.deleteTenant({ id: created.id, force: true });
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM "UserTenantMapping" WHERE "tenantId" = $1`, [created.id]);
    expect(rows[0].n).toBe(0);
  });

  it("honours the etag and refuses a malformed id", async () => {
    const created = await server.grpc.tenants.createTenant({ tenant: unique("d") });
    await server.grpc.tenants.updateTenant({ tenant: { id: created.id, params: { changed: 1 } } });
    const stale = await rpcError(server.grpc.tenants.deleteTenant({ id: created.id, etag: created.etag }));
    expect(describeError(stale)).toEqual({ code: "Aborted", reason: "ETAG_MISMATCH" });
    const current = await server.grpc.tenants.getTenant({ id: created.id });
    await server.grpc.tenants.deleteTenant({ id: created.id, etag: current.etag });
    expect(describeError(await rpcError(server.grpc.tenants.deleteTenant({ id: "nope" })))).toEqual({
      code: "InvalidArgument",
      fields: ["id"],
    });
  });
});
