import http2 from "node:http2";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { connectJson, createTenantBytes, grpcBinary, OK, updateTenantBytes } from "../support/raw-rpc.js";
import { canonical, jsonDocument, objectOf, protoKeyPath, quoted } from "../support/json-docs.js";

/**
 * Issue 16: params must come back exactly as written, through every write
 * path and both encodings, or be refused with INVALID_ARGUMENT naming the
 * value; never INTERNAL (the harness fails this file if the server logs
 * one). Requests are sent as raw bytes and JSON text (support/raw-rpc.ts)
 * because typed clients would drop a `__proto__` key before sending it.
 */
let server: TestServer;
let session: http2.ClientHttp2Session;
beforeAll(async () => {
  server = await startTestServer();
  session = http2.connect(server.baseUrl);
});
afterAll(async () => {
  session?.close();
  await server?.close();
});

let counter = 0;
function unique() {
  counter += 1;
  const tag = `${counter}-${Math.random().toString(36).slice(2, 8)}`;
  return { name: `Params ${tag}`, domain: `p-${tag}.example` };
}

type Protocol = "grpc" | "connect";
const WRITE_PATHS = ["create", "create with request_id", "create with deadline", "update params", "update params.<key>"] as const;
type WritePath = (typeof WRITE_PATHS)[number];
const BASE_PARAMS = { keep: "me" };

/** A params document: the value sent in binary, the text sent in JSON (JSON.stringify of the value unless given). */
interface Doc {
  value: object;
  json?: string;
}

/**
 * Writes `doc` through one write path and protocol. For updates, a tenant
 * with BASE_PARAMS is created first, and `maskKeys` (the default: the
 * document's first key) name the key that `update params.<key>` sets.
 */
async function write(protocol: Protocol, path: WritePath, doc: Doc, maskKeys?: string[]) {
  const json = doc.json ?? JSON.stringify(doc.value);
  const fields = unique();
  if (path.startsWith("create")) {
    const requestId = path === "create with request_id" ? randomUUID() : "";
    const answer =
      protocol === "grpc"
        ? await grpcBinary(session, "CreateTenant", createTenantBytes({ ...fields, params: doc.value }, requestId), path === "create with deadline" ? { "grpc-timeout": "5S" } : {})
        : await connectJson(
            server.baseUrl,
            "CreateTenant",
            `{"tenant":{"name":${JSON.stringify(fields.name)},"domain":${JSON.stringify(fields.domain)},"params":${json}}${requestId ? `,"requestId":"${requestId}"` : ""}}`,
            path === "create with deadline" ? { "connect-timeout-ms": "5000" } : {},
          );
    return { answer, ...fields, before: undefined };
  }
  const base = await server.grpc.tenants.createTenant({ tenant: { ...fields, params: BASE_PARAMS } });
  const keys = maskKeys ?? Object.keys(doc.value).slice(0, 1);
  const mask = path === "update params" ? "params" : ["params", ...keys.map(quoted)].join(".");
  const answer =
    protocol === "grpc"
      ? await grpcBinary(session, "UpdateTenant", updateTenantBytes({ id: base.id, params: doc.value }, [mask]))
      : await connectJson(server.baseUrl, "UpdateTenant", `{"tenant":{"id":"${base.id}","params":${json}},"updateMask":${JSON.stringify(mask)}}`);
  return { answer, ...fields, before: BASE_PARAMS };
}

/**
 * The written tenant, read back through GetTenant, LookupTenant (by domain
 * and by name) and ListTenants filtered on its name and on `filterKeys`:
 * every answer's params, as canonical JSON.
 */
async function readBack(clients: TenancyClients, name: string, domain: string, filterKeys: string[]): Promise<string[]> {
  const byName = await clients.tenants.lookupTenant({ key: { case: "name", value: name } });
  const byId = await clients.tenants.getTenant({ id: byName.id });
  const byDomain = await clients.tenants.lookupTenant({ key: { case: "domain", value: domain } });
  const nameFilter = `name = ${JSON.stringify(name)}`;
  const filter = filterKeys.length > 0 ? `${nameFilter} AND params.${filterKeys.map(quoted).join(".")}:*` : nameFilter;
  const listed = await clients.tenants.listTenants({ filter });
  expect(listed.tenants.map((t) => t.id), filter).toEqual([byName.id]);
  return [byName, byId, byDomain, ...listed.tenants].map((t) => canonical(t.params));
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** What `update params.<keys>` makes of `before`: the value at `keys` in `doc`, or the key removed when `doc` lacks it. */
function applyMaskKey(before: Record<string, unknown>, keys: string[], doc: unknown): Record<string, unknown> {
  let value: unknown = doc;
  for (const key of keys) value = isObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
  const set = (target: Record<string, unknown>, rest: string[]): Record<string, unknown> => {
    const [key, ...more] = rest;
    const copy = objectOf(Object.entries(target));
    if (more.length === 0) {
      if (value === undefined) delete copy[key!];
      else Object.defineProperty(copy, key!, { value, enumerable: true, writable: true, configurable: true });
      return copy;
    }
    const child = Object.hasOwn(target, key!) ? target[key!] : undefined;
    if (value === undefined && !isObject(child)) return copy;
    Object.defineProperty(copy, key!, { value: set(isObject(child) ? child : {}, more), enumerable: true, writable: true, configurable: true });
    return copy;
  };
  return set(before, keys);
}

describe("issue 16, as reported: a params key named constructor", () => {
  // The curl requests of the issue: Connect protocol, JSON text.
  it.each([
    ["with a request_id", true, {}],
    ["with a deadline", false, { "connect-timeout-ms": "5000" }],
    ["with neither (coalesced)", false, {}],
  ])("CreateTenant %s stores it and reads it back", async (_, withRequestId, headers) => {
    for (const params of [{ constructor: "x" }, { a: [{ constructor: 1 }] }, { constructor: { constructor: null } }]) {
      const fields = unique();
      const body = JSON.stringify({ tenant: { ...fields, params }, ...(withRequestId ? { requestId: randomUUID() } : {}) });
      const answer = await connectJson(server.baseUrl, "CreateTenant", body, headers);
      expect(answer, body).toMatchObject({ code: OK });
      expect(canonical(answer.params)).toBe(canonical(params));
      expect(new Set(await readBack(server.connect, fields.name, fields.domain, Object.keys(params)))).toEqual(new Set([canonical(params)]));
    }
  });
});

describe("params that cannot be stored exactly are refused, the same way on every path", () => {
  const everyWay = WRITE_PATHS.flatMap((path) => (["grpc", "connect"] as const).map((protocol) => [path, protocol] as const));

  it.each(everyWay)("a __proto__ key anywhere: %s over %s", async (path, protocol) => {
    const docs: Array<[Doc, string]> = [
      [{ value: { a: objectOf([["__proto__", { polluted: true }]]) } }, "tenant.params.a.__proto__"],
      [{ value: { a: [1, objectOf([["ok", 1], ["__proto__", 1]])] } }, "tenant.params.a[1].__proto__"],
      [{ value: { "x.y": objectOf([["__proto__", null]]) } }, "tenant.params.`x.y`.__proto__"],
    ];
    for (const [doc, field] of docs) {
      const { answer, name } = await write(protocol, path, doc);
      expect(answer, JSON.stringify(doc.value)).toMatchObject({ code: Code.InvalidArgument, fields: [field] });
      expect(answer.message).toContain("__proto__");
      const stored = await server.sql.query(`SELECT params FROM "Tenants" WHERE name = $1`, [name]);
      expect(stored.rows).toEqual(path.startsWith("create") ? [] : [{ params: BASE_PARAMS }]);
    }
  });

  it.each(everyWay)("numbers that would not read back (1e400, -0): %s over %s", async (path, protocol) => {
    const cases: Array<[Doc, string, string]> = [
      [{ value: { n: Number.POSITIVE_INFINITY }, json: `{"n":1e400}` }, "tenant.params.n", "finite"],
      [{ value: { n: [Number.NEGATIVE_INFINITY] }, json: `{"n":[-1e400]}` }, "tenant.params.n[0]", "finite"],
      [{ value: { z: -0 }, json: `{"z":-0}` }, "tenant.params.z", "-0"],
      [{ value: { z: { y: -0 } }, json: `{"z":{"y":-1e-400}}` }, "tenant.params.z.y", "-0"],
    ];
    for (const [doc, field, words] of cases) {
      const { answer } = await write(protocol, path, doc);
      expect(answer, doc.json).toMatchObject({ code: Code.InvalidArgument, fields: [field] });
      expect(answer.message).toContain(words);
    }
  });

  it.each(everyWay)("doubles at the edges read back exactly: %s over %s", async (path, protocol) => {
    const value = { n: [5e-324, -5e-324, 1.7976931348623157e308, 2 ** 53 + 2, 0.1, 1e21, -1e-7, 0] };
    const { answer, before } = await write(protocol, path, { value });
    expect(answer.code).toBe(OK);
    expect(canonical(answer.params)).toBe(canonical(path === "update params.<key>" ? { ...before, ...value } : value));
  });

  it.each(WRITE_PATHS)("lone surrogates in JSON strings and keys: %s", async (path) => {
    const cases: Array<[string, string, string]> = [
      [`{"s":"a\\ud800b"}`, "tenant.params.s", "Unicode"],
      [`{"s":["\\udc00"]}`, "tenant.params.s[0]", "Unicode"],
      [`{"s":{"\\ud800":1}}`, "tenant.params.s", "Unicode"],
    ];
    for (const [json, field, words] of cases) {
      // The mask names "s", the document's key (a lone surrogate cannot be written in a binary string).
      const { answer } = await write("connect", path, { value: { s: null }, json }, ["s"]);
      expect(answer, json).toMatchObject({ code: Code.InvalidArgument, fields: [field] });
      expect(answer.message).toContain(words);
    }
  });

  it("binary strings are UTF-8: a surrogate's bytes are malformed protobuf, INVALID_ARGUMENT", async () => {
    const bytes = Buffer.from(createTenantBytes({ ...unique(), params: { s: "\u0001\u0002\u0003" } }));
    bytes.set([0xed, 0xa0, 0x80], bytes.indexOf(Buffer.from([1, 2, 3])));
    const answer = await grpcBinary(session, "CreateTenant", bytes);
    expect(answer.code).toBe(Code.InvalidArgument);
  });

  it.each(WRITE_PATHS)("duplicate names in a JSON body are refused: %s", async (path) => {
    const cases: Array<[string, string]> = [
      [`{"a":1,"a":2}`, "tenant.params.a"],
      [`{"a":{"b":[{"c":1,"\\u0063":2}]}}`, "tenant.params.a.b[0].c"],
    ];
    for (const [json, field] of cases) {
      const { answer } = await write("connect", path, { value: { a: null }, json }, ["a"]);
      expect(answer, json).toMatchObject({ code: Code.InvalidArgument, fields: [field] });
      expect(answer.message).toContain("more than once");
    }
    // Anywhere in the body, not only in params.
    const fields = unique();
    const answer = await connectJson(
      server.baseUrl,
      "CreateTenant",
      `{"tenant":{"name":${JSON.stringify(fields.name)},"name":"Other","domain":${JSON.stringify(fields.domain)}}}`,
    );
    expect(answer).toMatchObject({ code: Code.InvalidArgument, fields: ["tenant.name"] });
  });

  it("the JSON checks hold for every protocol that carries JSON: gRPC-Web and gRPC too", async () => {
    const fields = unique();
    const proto = `{"tenant":{"name":${JSON.stringify(fields.name)},"domain":${JSON.stringify(fields.domain)},"params":{"a":{"__proto__":1}}}}`;
    const duplicate = `{"tenant":{"name":${JSON.stringify(fields.name)},"domain":${JSON.stringify(fields.domain)},"params":{"a":1,"a":2}}}`;
    const grpcJson = (text: string) => grpcBinary(session, "CreateTenant", Buffer.from(text), { "content-type": "application/grpc+json" });
    expect(await grpcJson(proto)).toMatchObject({ code: Code.InvalidArgument, fields: ["tenant.params.a.__proto__"] });
    expect(await grpcJson(duplicate)).toMatchObject({ code: Code.InvalidArgument, fields: ["tenant.params.a"] });
    for (const text of [proto, duplicate]) {
      const envelope = Buffer.alloc(5 + Buffer.byteLength(text));
      envelope.writeUInt32BE(Buffer.byteLength(text), 1);
      envelope.write(text, 5);
      const response = await fetch(`${server.baseUrl}/tenancy.v1.TenantService/CreateTenant`, {
        method: "POST",
        headers: { "content-type": "application/grpc-web+json", "x-grpc-web": "1" },
        body: envelope,
      });
      // gRPC-Web sends the status in a trailer frame (flag 0x80) at the end of the body.
      const body = Buffer.from(await response.arrayBuffer());
      const trailer = body.subarray(5, 5 + body.readUInt32BE(1)).toString();
      expect(body[0]).toBe(0x80);
      expect(trailer).toContain(`grpc-status: ${Code.InvalidArgument}`);
      expect(decodeURIComponent(trailer)).toMatch(/__proto__|more than once/);
    }
    expect((await server.sql.query(`SELECT 1 FROM "Tenants" WHERE name = $1`, [fields.name])).rows).toEqual([]);
  });

  it("repeated map entries in binary follow protobuf's rule: the last one wins", async () => {
    // Two encoded requests, concatenated, are one merged request (protobuf
    // encoding); its params map holds `a` twice.
    const fields = unique();
    const bytes = Buffer.concat([createTenantBytes({ ...fields, params: { a: 1, b: 1 } }), createTenantBytes({ ...fields, params: { a: 2 } })]);
    const answer = await grpcBinary(session, "CreateTenant", bytes);
    expect(answer.code).toBe(OK);
    expect(answer.params).toEqual({ a: 2, b: 1 });
  });
});

describe("writes that do not change params keep it exactly", () => {
  it("through suspend, delete, undelete and purge (entity flushes and row locks), on a document of hostile keys", async () => {
    // Every Object.prototype name but __proto__, with values that trip code
    // reading objects by their keys (`constructor: null` next to `client`).
    const params = Object.fromEntries(
      Object.getOwnPropertyNames(Object.prototype)
        .filter((name) => name !== "__proto__")
        .map((name, i) => [name, [null, i, "s", true, { constructor: null, client: 1 }, [{ [name]: { valueOf: 1 } }]][i % 6]]),
    );
    const fields = unique();
    const created = await server.connect.tenants.createTenant({ tenant: { ...fields, params: params as JsonObject } }, { timeoutMs: 5_000 });
    const expected = canonical(params);
    expect(canonical(created.params)).toBe(expected);
    const steps = [
      () => server.grpc.tenants.updateTenant({ tenant: { id: created.id, state: 2 }, updateMask: { paths: ["state"] } }),
      () => server.connect.tenants.updateTenant({ tenant: { id: created.id, name: `${fields.name} renamed` }, updateMask: { paths: ["name"] } }),
      () => server.grpc.tenants.deleteTenant({ id: created.id }),
      () => server.connect.tenants.undeleteTenant({ id: created.id }),
      () => server.grpc.tenants.deleteTenant({ id: created.id }),
    ];
    for (const step of steps) {
      const tenant = await step();
      expect(canonical(tenant.params)).toBe(expected);
      expect(canonical((await server.grpc.tenants.getTenant({ id: created.id })).params)).toBe(expected);
    }
    await server.grpc.tenants.purgeTenant({ id: created.id });
    expect((await server.sql.query(`SELECT 1 FROM "Tenants" WHERE tenant_id = $1`, [created.id])).rows).toEqual([]);
  });
});

describe("generated params documents, keys named after Object.prototype, every write path, both encodings", () => {
  /** Paths of keys through objects: what a mask `params.<k1>.<k2>` or a filter can name. */
  function keyPaths(value: unknown, prefix: string[] = []): string[][] {
    if (!isObject(value)) return [];
    return Object.keys(value).flatMap((k) => [[...prefix, k], ...keyPaths(value[k], [...prefix, k])]);
  }

  it("answer the exact document (from every read) or INVALID_ARGUMENT naming the key, never anything else", async () => {
    let refused = 0;
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(jsonDocument, fc.constantFrom(...WRITE_PATHS), fc.constantFrom<Protocol>("grpc", "connect"), fc.nat(), async (value, path, protocol, pick) => {
        let maskKeys: string[] | undefined;
        if (path === "update params.<key>") {
          // The JSON encoding of a FieldMask turns camelCase into snake_case
          // and refuses "_" (README): JSON clients can only name such keys.
          const usable = keyPaths(value).filter((keys) => protocol === "grpc" || keys.every((k) => !/[A-Z_,]/.test(k)));
          maskKeys = usable.length > 0 ? usable[pick % usable.length] : ["constructor"];
        }
        const { answer, name, domain, before } = await write(protocol, path, { value }, maskKeys);
        const refusedAt = protoKeyPath(value, "tenant.params");
        if (refusedAt) {
          expect(answer, `${path} over ${protocol}: ${JSON.stringify(value)}`).toMatchObject({ code: Code.InvalidArgument, fields: [refusedAt] });
          refused += 1;
          return;
        }
        expect(answer, `${path} over ${protocol}: ${answer.message}`).toMatchObject({ code: OK });
        const expected = canonical(maskKeys ? applyMaskKey(before!, maskKeys, value) : value);
        expect(canonical(answer.params)).toBe(expected);
        // The filter names the longest key path of the document.
        const filterKeys = keyPaths(JSON.parse(expected)).sort((a, b) => b.length - a.length)[0] ?? [];
        const reads = await readBack(protocol === "grpc" ? server.grpc : server.connect, name, domain, filterKeys);
        expect(new Set(reads)).toEqual(new Set([expected]));
        stored += 1;
      }),
      { numRuns: 50, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );
    // Both outcomes were exercised.
    expect(refused).toBeGreaterThan(0);
    expect(stored).toBeGreaterThan(0);
  }, 120_000);
});
