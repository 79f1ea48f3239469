import http2 from "node:http2";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { Code } from "@connectrpc/connect";
import type { TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { connectJson, createTenantBytes, grpcBinary, objectOf, OK, updateTenantBytes } from "../support/raw-rpc.js";

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

/** A key as written in update masks and filters: always backtick-quoted. */
const quoted = (key: string) => `\`${key.replace(/`/g, "``")}\``;

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

/** JSON with sorted keys: compares documents whatever their key order, with any key (`constructor` too). */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
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

/** The first `__proto__` key in document order (the order a client writes), as a field path. */
function protoKeyPath(value: unknown, path: string): string | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = protoKeyPath(value[i], `${path}[${i}]`);
      if (found) return found;
    }
  } else if (value !== null && typeof value === "object") {
    for (const key of Object.keys(value)) {
      const segment = /^[A-Za-z0-9_-]+$/.test(key) ? key : quoted(key);
      if (key === "__proto__") return `${path}.${segment}`;
      const found = protoKeyPath((value as Record<string, unknown>)[key], `${path}.${segment}`);
      if (found) return found;
    }
  }
  return undefined;
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
