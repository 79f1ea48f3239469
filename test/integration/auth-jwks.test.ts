import http from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { rpcError } from "../support/errors.js";
import { clientsWithToken } from "../support/tokens.js";

/** How soon a JWKS may be reloaded for an unknown kid, in these servers. */
const COOLDOWN_MS = 200;
const ISSUER = "https://idp.test.example/";

interface SigningKey {
  kid: string;
  alg: "RS256" | "ES256" | "EdDSA";
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicKey: CryptoKey;
}

async function signingKey(alg: SigningKey["alg"]): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === "EdDSA" ? { crv: "Ed25519" } : {});
  const kid = `${alg}-${crypto.randomUUID()}`;
  return { kid, alg, privateKey, publicKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

function jwks(...keys: SigningKey[]) {
  return { keys: keys.map((k) => k.publicJwk) };
}

async function tokenSignedWith(key: SigningKey, claims: { admin?: boolean; kid?: string } = {}): Promise<string> {
  return new SignJWT(claims.admin === false ? {} : { scope: "tenancy.admin" })
    .setProtectedHeader({ alg: key.alg, kid: claims.kid ?? key.kid })
    .setSubject(crypto.randomUUID())
    .setIssuer(ISSUER)
    .setExpirationTime("10m")
    .sign(key.privateKey);
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The code a ListTenants call with this token gets, or "OK". */
async function outcome(server: TestServer, token: string): Promise<string> {
  try {
    await clientsWithToken(server.baseUrl, token).tenants.listTenants({ pageSize: 1 });
    return "OK";
  } catch (error) {
    return Code[(await rpcError(Promise.reject(error))).code];
  }
}

describe("AUTH_JWKS_URL", () => {
  let served: { keys: JWK[] } = { keys: [] };
  let fetches = 0;
  let idp: http.Server;
  let server: TestServer;
  let rsa: SigningKey;
  let ec: SigningKey;
  let ed: SigningKey;

  beforeAll(async () => {
    [rsa, ec, ed] = await Promise.all([signingKey("RS256"), signingKey("ES256"), signingKey("EdDSA")]);
    served = jwks(rsa, ec, ed);
    idp = http.createServer((req, res) => {
      fetches += 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(served));
    });
    await new Promise<void>((resolve) => idp.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/.well-known/jwks.json`;
    server = await startTestServer({
      auth: { mode: "jwt", keys: { kind: "jwks-url", url }, issuer: ISSUER, jwksRefreshCooldownMs: COOLDOWN_MS },
    });
  });
  afterAll(async () => {
    await server?.close();
    idp?.close();
  });

  it("accepts RS256, ES256 and EdDSA tokens, fetching the key set once", async () => {
    for (const key of [rsa, ec, ed]) expect(await outcome(server, await tokenSignedWith(key))).toBe("OK");
    expect(fetches).toBe(1);
  });

  it("refuses a token whose signature does not match its kid's key", async () => {
    const impostor = await signingKey("ES256");
    expect(await outcome(server, await tokenSignedWith(impostor, { kid: ec.kid }))).toBe("Unauthenticated");
  });

  it("refuses HS256 tokens keyed with a public key of the set (algorithm confusion)", async () => {
    const pem = await exportSPKI(rsa.publicKey);
    for (const secret of [pem, JSON.stringify(rsa.publicJwk)]) {
      const forged = await new SignJWT({ scope: "tenancy.admin" })
        .setProtectedHeader({ alg: "HS256", kid: rsa.kid })
        .setSubject(crypto.randomUUID())
        .setIssuer(ISSUER)
        .setExpirationTime("10m")
        .sign(new TextEncoder().encode(secret));
      expect(await outcome(server, forged)).toBe("Unauthenticated");
    }
  });

  it("picks up a rotated key (a new kid) and drops the retired one", async () => {
    const next = await signingKey("ES256");
    const before = fetches;
    await wait(COOLDOWN_MS + 50);
    served = jwks(next, ed);
    expect(await outcome(server, await tokenSignedWith(next))).toBe("OK");
    expect(fetches).toBe(before + 1);
    // The set just fetched no longer holds the RSA key.
    await wait(COOLDOWN_MS + 50);
    expect(await outcome(server, await tokenSignedWith(rsa))).toBe("Unauthenticated");
  });

  it("does not refetch for every unknown kid: a flood of forged kids costs one fetch per cooldown", async () => {
    await wait(COOLDOWN_MS + 50);
    const before = fetches;
    const results = await Promise.all(
      Array.from({ length: 10 }, async () => outcome(server, await tokenSignedWith(ed, { kid: crypto.randomUUID() }))),
    );
    expect(results.every((r) => r === "Unauthenticated")).toBe(true);
    expect(fetches - before).toBeLessThanOrEqual(1);
  });

  it("answers UNAVAILABLE when the key set cannot be fetched, and keeps using the keys it has", async () => {
    served = jwks(ed);
    await wait(COOLDOWN_MS + 50);
    expect(await outcome(server, await tokenSignedWith(ed))).toBe("OK");
    await new Promise<void>((resolve) => {
      idp.close(() => resolve());
      idp.closeAllConnections();
    });
    await wait(COOLDOWN_MS + 50);
    expect(await outcome(server, await tokenSignedWith(ed))).toBe("OK");
    const unknown = await signingKey("EdDSA");
    expect(await outcome(server, await tokenSignedWith(unknown))).toBe("Unavailable");
  });
});

describe("AUTH_JWKS_FILE", () => {
  let dir: string;
  let file: string;
  let server: TestServer;
  let first: SigningKey;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "tenancy-jwks-"));
    file = path.join(dir, "jwks.json");
    first = await signingKey("RS256");
    await writeFile(file, JSON.stringify(jwks(first)));
    server = await startTestServer({
      auth: { mode: "jwt", keys: { kind: "jwks-file", path: file }, issuer: ISSUER, jwksRefreshCooldownMs: COOLDOWN_MS },
    });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("accepts tokens signed with a key of the file, and refuses others", async () => {
    expect(await outcome(server, await tokenSignedWith(first))).toBe("OK");
    expect(await outcome(server, await tokenSignedWith(await signingKey("RS256")))).toBe("Unauthenticated");
  });

  it("picks up a key added to the file (a new kid) without a restart", async () => {
    const next = await signingKey("EdDSA");
    await writeFile(file, JSON.stringify(jwks(next)));
    await wait(COOLDOWN_MS + 50);
    expect(await outcome(server, await tokenSignedWith(next))).toBe("OK");
    await wait(COOLDOWN_MS + 50);
    expect(await outcome(server, await tokenSignedWith(first))).toBe("Unauthenticated");
  });
});
