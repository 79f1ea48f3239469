import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { generateKeyPair, SignJWT } from "jose";
import { Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/health/v1/health_pb.js";
import * as reflection from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { createTenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { rpcError } from "../support/errors.js";
import { b64json, bearer, clientsWithToken, hsToken, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET } from "../support/tokens.js";

/** AUTH_MODE=jwt with an HS256 secret, an issuer and an audience. */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({
    auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET }, issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
  });
});
afterAll(async () => {
  await server?.close();
});

const tag = () => Math.random().toString(36).slice(2, 10);

/** What every refused credential gets: the same code, the same words, nothing more. */
async function expectUnauthenticated(token: string | undefined) {
  const clients = token === undefined ? server.grpc : clientsWithToken(server.baseUrl, token);
  const error = await rpcError(clients.tenants.listTenants({}));
  expect(error.code).toBe(Code.Unauthenticated);
  expect(error.rawMessage).toBe("a valid bearer token is required");
  expect(error.details).toEqual([]);
  return error;
}

describe("AUTH_MODE=jwt with an HS256 secret", () => {
  it("accepts a valid token, and the principal is its sub", async () => {
    const sub = crypto.randomUUID();
    const admin = clientsWithToken(server.baseUrl, await hsToken({ sub, admin: true }));
    const tenant = await admin.tenants.createTenant({ tenant: { name: `Token ${tag()}`, domain: `${tag()}.token.example` } });
    const membership = await admin.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID() } });
    expect(membership.createdBy).toBe(sub);
  });

  it("accepts the token over the Connect protocol too, and the Bearer scheme in any case", async () => {
    const token = await hsToken({ admin: true });
    const connect = createTenancyClients({ baseUrl: server.baseUrl, protocol: "connect", useBinaryFormat: false });
    await expect(connect.tenants.listTenants({}, { headers: { authorization: `bearer ${token}` } })).resolves.toBeDefined();
    const error = await rpcError(connect.tenants.listTenants({}));
    expect(error.code).toBe(Code.Unauthenticated);
  });

  it("refuses a request without a token, on both services, whatever x-actor-id says", async () => {
    await expectUnauthenticated(undefined);
    const withActor = await rpcError(
      server.grpc.memberships.listMemberships({}, { headers: { "x-actor-id": crypto.randomUUID() } }),
    );
    expect(withActor.code).toBe(Code.Unauthenticated);
    const basic = await rpcError(server.grpc.tenants.listTenants({}, { headers: { authorization: `Basic ${btoa("admin:admin")}` } }));
    expect(basic.code).toBe(Code.Unauthenticated);
  });

  it("refuses an expired token", async () => {
    await expectUnauthenticated(await hsToken({ admin: true, expiresIn: -3600 }));
  });

  it("refuses a token that is not valid yet (nbf)", async () => {
    await expectUnauthenticated(await hsToken({ admin: true, notBefore: 3600 }));
  });

  it("refuses a token from another issuer", async () => {
    await expectUnauthenticated(await hsToken({ admin: true, issuer: "https://evil.example/" }));
  });

  it("refuses a token for another audience", async () => {
    await expectUnauthenticated(await hsToken({ admin: true, audience: "another-service" }));
  });

  it("refuses a tampered token: claims changed under the original signature", async () => {
    const sub = crypto.randomUUID();
    const honest = await hsToken({ sub });
    const [header, , signature] = honest.split(".");
    const now = Math.floor(Date.now() / 1000);
    const forged = b64json({ sub, scope: "tenancy.admin", iss: TEST_ISSUER, aud: TEST_AUDIENCE, iat: now, exp: now + 600 });
    await expectUnauthenticated(`${header}.${forged}.${signature}`);
  });

  it("refuses alg: none", async () => {
    const now = Math.floor(Date.now() / 1000);
    const claims = b64json({ sub: crypto.randomUUID(), scope: "tenancy.admin", iss: TEST_ISSUER, aud: TEST_AUDIENCE, exp: now + 600 });
    for (const alg of ["none", "None", "NONE"]) {
      await expectUnauthenticated(`${b64json({ alg, typ: "JWT" })}.${claims}.`);
    }
  });

  it("refuses a token signed with another secret", async () => {
    await expectUnauthenticated(await hsToken({ admin: true, secret: "another-secret-of-enough-length-0123456789" }));
  });

  it("refuses an asymmetric algorithm where the secret is configured (algorithm confusion)", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const rs = await new SignJWT({ scope: "tenancy.admin" })
      .setProtectedHeader({ alg: "RS256" })
      .setSubject(crypto.randomUUID())
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .setExpirationTime("10m")
      .sign(privateKey);
    await expectUnauthenticated(rs);
    // HS512 with the right secret is not on the list either.
    const hs512 = await new SignJWT({ scope: "tenancy.admin" })
      .setProtectedHeader({ alg: "HS512" })
      .setSubject(crypto.randomUUID())
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(TEST_SECRET));
    await expectUnauthenticated(hs512);
  });

  it("refuses tokens without an expiry, without a sub, or whose sub is not a UUID", async () => {
    const noExp = await new SignJWT({ scope: "tenancy.admin" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(crypto.randomUUID())
      .setIssuer(TEST_ISSUER)
      .setAudience(TEST_AUDIENCE)
      .sign(new TextEncoder().encode(TEST_SECRET));
    await expectUnauthenticated(noExp);
    await expectUnauthenticated(await hsToken({ admin: true, sub: "" }));
    await expectUnauthenticated(await hsToken({ admin: true, sub: "root" }));
  });

  it("refuses garbage and oversized tokens", async () => {
    await expectUnauthenticated("not-a-jwt");
    await expectUnauthenticated("a.b.c");
    const huge = await hsToken({ admin: true, extra: { padding: "x".repeat(10_000) } });
    await expectUnauthenticated(huge);
  });

  it("logs why a token was refused, for operators only", async () => {
    await expectUnauthenticated(await hsToken({ admin: true, expiresIn: -3600 }));
    expect(server.logs.some((line) => line.msg === "unauthenticated request" && String(line.why).includes("ERR_JWT_EXPIRED"))).toBe(true);
  });

  it("makes only the tenancy.admin scope a platform administrator", async () => {
    const create = (scope: string) =>
      hsToken({ extra: { scope } }).then((token) =>
        clientsWithToken(server.baseUrl, token).tenants.createTenant({ tenant: { name: `Scope ${tag()}`, domain: `${tag()}.scope.example` } }),
      );
    await expect(create("openid tenancy.admin profile")).resolves.toBeDefined();
    for (const scope of ["tenancy.administrator", "tenancy", "openid tenancy.admin.read", "TENANCY.ADMIN", ""]) {
      expect((await rpcError(create(scope))).code).toBe(Code.PermissionDenied);
    }
  });

  it("ignores x-actor-id: created_by and updated_by are the token's sub", async () => {
    const sub = crypto.randomUUID();
    const admin = createTenancyClients({ baseUrl: server.baseUrl, protocol: "grpc", interceptors: [bearer(await hsToken({ sub, admin: true }))] });
    const tenant = await admin.tenants.createTenant({ tenant: { name: `Actor ${tag()}`, domain: `${tag()}.actor.example` } });
    const forged = crypto.randomUUID();
    const created = await admin.memberships.createMembership(
      { membership: { tenantId: tenant.id, userId: crypto.randomUUID(), createdBy: forged, updatedBy: forged } },
      { headers: { "x-actor-id": forged } },
    );
    expect(created).toMatchObject({ createdBy: sub, updatedBy: sub });
    const updated = await admin.memberships.updateMembership(
      { membership: { id: created.id, roles: ["viewer"], updatedBy: forged } },
      { headers: { "x-actor-id": forged } },
    );
    expect(updated).toMatchObject({ createdBy: sub, updatedBy: sub, roles: ["viewer"] });
    const { rows } = await server.sql.query(`SELECT "createdBy", "updatedBy" FROM "UserTenantMapping" WHERE "Id" = $1`, [created.id]);
    expect(rows).toEqual([{ createdBy: sub, updatedBy: sub }]);
  });
});

describe("services that need no token", () => {
  it("answers health checks without a token", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.baseUrl }));
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
    const overConnect = createClient(Health, createConnectTransport({ baseUrl: server.baseUrl, httpVersion: "1.1" }));
    expect((await overConnect.check({ service: "tenancy.v1.TenantService" })).status).toBe(Status.SERVING);
  });

  it("answers reflection without a token", async () => {
    const client = createClient(reflection.ServerReflection, createGrpcTransport({ baseUrl: server.baseUrl }));
    const names: string[] = [];
    for await (const response of client.serverReflectionInfo(
      (async function* () {
        yield { messageRequest: { case: "listServices" as const, value: "" } };
      })(),
    )) {
      if (response.messageResponse.case === "listServicesResponse") {
        names.push(...response.messageResponse.value.service.map((s) => s.name));
      }
    }
    expect(names).toContain("tenancy.v1.TenantService");
  });
});
