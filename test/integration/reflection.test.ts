import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createFileRegistry,
  fromBinary,
  fromJson,
  toJson,
  type DescMethod,
  type DescMethodUnary,
  type FileRegistry,
  type JsonValue,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let server: TestServer;
let transport: Transport;
beforeAll(async () => {
  server = await startTestServer();
  // What grpcurl speaks: gRPC on cleartext HTTP/2.
  transport = createGrpcTransport({ baseUrl: server.baseUrl });
});
afterAll(async () => {
  await server?.close();
});

function tag() {
  return Math.random().toString(36).slice(2, 10);
}

/** A ServerReflectionRequest as either version accepts it (they differ only in package). */
interface ReflectionRequest {
  host?: string;
  messageRequest:
    | { case: "listServices" | "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } };
}
type ReflectionResponse = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;

interface ReflectionStream {
  /** Sends one request on the open stream and reads its one response. */
  ask(request: ReflectionRequest): Promise<ReflectionResponse>;
  /** Half-closes the stream and checks that the server then ends it cleanly. */
  close(): Promise<void>;
}

/**
 * One bidi stream kept open across many requests, the way grpcurl and buf
 * curl use it: a request goes out only when `ask` is called, so each
 * response can be checked before the next question.
 */
function openStream(call: (requests: AsyncIterable<ReflectionRequest>) => AsyncIterable<ReflectionResponse>): ReflectionStream {
  const outbox: ReflectionRequest[] = [];
  let wake: (() => void) | undefined;
  let halfClosed = false;
  async function* requests() {
    for (;;) {
      for (let next = outbox.shift(); next; next = outbox.shift()) yield next;
      if (halfClosed) return;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  const responses = call(requests())[Symbol.asyncIterator]();
  const flush = () => {
    wake?.();
    wake = undefined;
  };
  return {
    async ask(request) {
      outbox.push(request);
      flush();
      const next = await responses.next();
      if (next.done) throw new Error("the server ended the reflection stream");
      return next.value;
    },
    async close() {
      halfClosed = true;
      flush();
      expect((await responses.next()).done).toBe(true);
    },
  };
}

const versions = [
  ["v1", (t: Transport) => openStream((requests) => createClient(v1.ServerReflection, t).serverReflectionInfo(requests))],
  ["v1alpha", (t: Transport) => openStream((requests) => createClient(v1alpha.ServerReflection, t).serverReflectionInfo(requests))],
] as const;

function filesOf(response: ReflectionResponse): FileDescriptorProto[] {
  const answer = response.messageResponse;
  if (answer.case !== "fileDescriptorResponse") throw new Error(`expected files, got ${JSON.stringify(answer)}`);
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

function errorOf(response: ReflectionResponse): { errorCode: number; errorMessage: string } {
  const answer = response.messageResponse;
  if (answer.case !== "errorResponse") throw new Error(`expected an error_response, got ${answer.case}`);
  return { errorCode: answer.value.errorCode, errorMessage: answer.value.errorMessage };
}

const NOT_FOUND = 5;

/** Links the files of one answer (requested file first) into a registry, as a reflection client does. */
function registryOf(files: FileDescriptorProto[]): FileRegistry {
  const [first] = files;
  if (!first) throw new Error("no files in the answer");
  const byName = new Map(files.map((f) => [f.name, f]));
  return createFileRegistry(first, (name) => byName.get(name));
}

const isUnary = (method: DescMethod): method is DescMethodUnary => method.methodKind === "unary";

describe.each(versions)("grpc.reflection.%s.ServerReflection", (_version, open) => {
  it("lists the services the server offers", async () => {
    const stream = open(transport);
    const response = await stream.ask({ host: "tenancy.test", messageRequest: { case: "listServices", value: "*" } });
    expect(response.validHost).toBe("tenancy.test");
    expect(response.originalRequest?.messageRequest).toEqual({ case: "listServices", value: "*" });
    const answer = response.messageResponse;
    if (answer.case !== "listServicesResponse") throw new Error(`unexpected ${answer.case}`);
    expect(answer.value.service.map((s) => s.name).sort()).toEqual(
      [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "tenancy.v1.EventService",
        "tenancy.v1.MembershipService",
        "tenancy.v1.ParamsSchemaService",
        "tenancy.v1.TenantService",
      ].sort(),
    );
    await stream.close();
  });

  it("answers file_containing_symbol for services, methods, messages, nested types and enum values, with dependencies", async () => {
    const stream = open(transport);
    for (const symbol of ["tenancy.v1.TenantService", "tenancy.v1.TenantService.GetTenant", "tenancy.v1.Tenant", "tenancy.v1.Tenant.params"]) {
      const files = filesOf(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: symbol } }));
      // The requested file first, then each import once.
      expect(files.map((f) => f.name)).toEqual([
        "tenancy/v1/tenant.proto",
        "google/protobuf/empty.proto",
        "google/protobuf/field_mask.proto",
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
      ]);
      expect(files[0]?.service.map((s) => s.name)).toEqual(["TenantService"]);
    }

    // A nested message (a map entry) and an enum value, scoped as protoc scopes them.
    const health = filesOf(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.HealthListResponse.StatusesEntry" } }));
    expect(health.map((f) => f.name)).toEqual(["health/v1/health.proto"]);
    const serving = filesOf(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckResponse.SERVING" } }));
    expect(serving.map((f) => f.name)).toEqual(["health/v1/health.proto"]);

    // A well-known type is a symbol too.
    const struct = filesOf(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "google.protobuf.Struct" } }));
    expect(struct.map((f) => f.name)).toEqual(["google/protobuf/struct.proto"]);
    await stream.close();
  });

  it("answers file_by_filename, well-known types included", async () => {
    const stream = open(transport);
    const membership = filesOf(await stream.ask({ messageRequest: { case: "fileByFilename", value: "tenancy/v1/membership.proto" } }));
    expect(membership[0]?.name).toBe("tenancy/v1/membership.proto");
    expect(membership[0]?.service.map((s) => s.name)).toEqual(["MembershipService"]);
    // Every import of the file is in the answer, each once.
    const names = membership.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const dep of membership[0]?.dependency ?? []) expect(names).toContain(dep);

    const timestamp = filesOf(await stream.ask({ messageRequest: { case: "fileByFilename", value: "google/protobuf/timestamp.proto" } }));
    expect(timestamp.map((f) => f.name)).toEqual(["google/protobuf/timestamp.proto"]);
    expect(timestamp[0]?.messageType.map((m) => m.name)).toEqual(["Timestamp"]);
    await stream.close();
  });

  it("answers NOT_FOUND for unknown names and keeps the stream open", async () => {
    const stream = open(transport);
    const symbol = await stream.ask({ host: "h", messageRequest: { case: "fileContainingSymbol", value: "tenancy.v1.Nope" } });
    expect(errorOf(symbol)).toEqual({ errorCode: NOT_FOUND, errorMessage: expect.stringContaining("tenancy.v1.Nope") });
    expect(symbol.validHost).toBe("h");
    expect(symbol.originalRequest?.messageRequest).toEqual({ case: "fileContainingSymbol", value: "tenancy.v1.Nope" });

    const file = await stream.ask({ messageRequest: { case: "fileByFilename", value: "tenancy/v1/nope.proto" } });
    expect(errorOf(file)).toEqual({ errorCode: NOT_FOUND, errorMessage: expect.stringContaining("tenancy/v1/nope.proto") });

    const extension = await stream.ask({
      messageRequest: { case: "fileContainingExtension", value: { containingType: "tenancy.v1.Tenant", extensionNumber: 100 } },
    });
    expect(errorOf(extension).errorCode).toBe(NOT_FOUND);

    const unknownType = await stream.ask({ messageRequest: { case: "allExtensionNumbersOfType", value: "tenancy.v1.Nope" } });
    expect(errorOf(unknownType).errorCode).toBe(NOT_FOUND);

    // The same stream still answers.
    const numbers = (await stream.ask({ messageRequest: { case: "allExtensionNumbersOfType", value: "tenancy.v1.Tenant" } })).messageResponse;
    expect(numbers.case).toBe("allExtensionNumbersResponse");
    expect(numbers.value).toMatchObject({ baseTypeName: "tenancy.v1.Tenant", extensionNumber: [] });
    const files = filesOf(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "tenancy.v1.Tenant" } }));
    expect(files[0]?.name).toBe("tenancy/v1/tenant.proto");
    await stream.close();
  });

  it("gives a client enough to call the service without any generated code", async () => {
    const stream = open(transport);
    const files = filesOf(await stream.ask({ messageRequest: { case: "fileContainingSymbol", value: "tenancy.v1.TenantService" } }));
    await stream.close();
    const registry = registryOf(files);
    const service = registry.getService("tenancy.v1.TenantService");
    if (!service) throw new Error("tenancy.v1.TenantService is not in the registry");

    // Unary calls on the descriptors from the registry alone.
    const call = async (name: string, request: JsonValue) => {
      const method = service.methods.find((m) => m.name === name);
      if (!method || !isUnary(method)) throw new Error(`no unary method ${name}`);
      const input = fromJson(method.input, request, { registry });
      const response = await transport.unary(method, undefined, undefined, undefined, input);
      return toJson(method.output, response.message, { registry }) as Record<string, unknown>;
    };

    const t = tag();
    const created = await call("CreateTenant", { tenant: { name: `Reflected ${t}`, domain: `${t}.reflect.example`, params: { plan: "pro", seats: 3 } } });
    expect(created).toMatchObject({ name: `Reflected ${t}`, domain: `${t}.reflect.example`, params: { plan: "pro", seats: 3 } });
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.createTime).toMatch(/^\d{4}-\d{2}-\d{2}T/);

    const got = await call("GetTenant", { id: created.id as string });
    expect(got).toEqual(created);
    // The typed client agrees with the dynamic one.
    expect((await server.grpc.tenants.getTenant({ id: created.id as string })).name).toBe(`Reflected ${t}`);
  });
});

describe("buf curl --reflect", () => {
  const buf = path.resolve("node_modules/.bin/buf");
  // buf creates its cache directory even when it needs nothing from it:
  // give it a throwaway one rather than the home directory.
  let cacheDir: string;
  beforeAll(async () => {
    cacheDir = await mkdtemp(path.join(os.tmpdir(), "buf-cache-"));
  });
  afterAll(async () => {
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });
  const run = async (...args: string[]) => {
    const { stdout } = await promisify(execFile)(buf, ["curl", ...args], {
      timeout: 20_000,
      env: { ...process.env, BUF_CACHE_DIR: cacheDir },
    });
    return stdout;
  };

  it.each(["grpc-v1", "grpc-v1alpha"])("calls LookupTenant with the schema from reflection (%s)", async (reflectProtocol) => {
    const t = tag();
    const created = await server.grpc.tenants.createTenant({ tenant: { name: `BufCurl ${t}`, domain: `${t}.bufcurl.example`, params: { tier: "gold" } } });
    const stdout = await run(
      "--reflect",
      "--reflect-protocol",
      reflectProtocol,
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "-d",
      JSON.stringify({ name: `BufCurl ${t}` }),
      `${server.baseUrl}/tenancy.v1.TenantService/LookupTenant`,
    );
    expect(JSON.parse(stdout)).toMatchObject({ id: created.id, name: `BufCurl ${t}`, domain: `${t}.bufcurl.example`, params: { tier: "gold" } });
  });

  it("lists services and methods through reflection", async () => {
    const services = (await run("--reflect", "--http2-prior-knowledge", "--list-services", server.baseUrl)).trim().split("\n");
    expect(services).toEqual(expect.arrayContaining(["tenancy.v1.TenantService", "tenancy.v1.MembershipService", "grpc.health.v1.Health"]));
    const methods = (await run("--reflect", "--http2-prior-knowledge", "--list-methods", server.baseUrl)).trim().split("\n");
    expect(methods).toEqual(
      expect.arrayContaining(["tenancy.v1.TenantService/CreateTenant", "tenancy.v1.TenantService/LookupTenant", "tenancy.v1.MembershipService/ListMemberships"]),
    );
  });
});
