import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

const SECRET = "s".repeat(32);
const dir = mkdtempSync(path.join(os.tmpdir(), "tenancy-auth-config-"));
const goodJwks = path.join(dir, "good.json");
writeFileSync(goodJwks, JSON.stringify({ keys: [{ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", kid: "a" }] }));
const notJson = path.join(dir, "bad.json");
writeFileSync(notJson, "{ keys: ");
const noKeys = path.join(dir, "empty.json");
writeFileSync(noKeys, JSON.stringify({ keys: [] }));

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("AUTH_MODE=none", () => {
  it("is the default, on the default loopback host", () => {
    expect(loadConfig({}).auth).toEqual({ mode: "none" });
    for (const HOST of ["127.0.0.1", "::1", "localhost", "LOCALHOST"]) expect(loadConfig({ HOST }).auth).toEqual({ mode: "none" });
  });

  it("is refused on any other host, saying why", () => {
    for (const HOST of ["0.0.0.0", "::", "10.0.0.5", "tenancy.internal", "127.0.0.2"]) {
      const error = refusal({ HOST, AUTH_MODE: "none" });
      expect(error.variable).toBe("AUTH_MODE");
      expect(error.message).toMatch(/every caller a platform administrator/);
      expect(error.message).toMatch(/loopback/);
      expect(error.message).toContain(`HOST is "${HOST}"`);
    }
    expect(refusal({ HOST: "0.0.0.0" }).variable).toBe("AUTH_MODE");
  });

  it("is refused when key material is set, since whoever set it expected authentication", () => {
    expect(refusal({ AUTH_JWT_SECRET: SECRET }).message).toMatch(/AUTH_MODE is none .* but AUTH_JWT_SECRET is set/);
    expect(refusal({ AUTH_MODE: "none", AUTH_JWKS_URL: "https://idp.example/jwks" }).variable).toBe("AUTH_MODE");
  });
});

describe("AUTH_MODE=jwt", () => {
  it("reads a secret, an issuer and an audience, and may listen anywhere", () => {
    expect(
      loadConfig({ HOST: "0.0.0.0", AUTH_MODE: "JWT", AUTH_JWT_SECRET: SECRET, AUTH_ISSUER: "https://idp.example/", AUTH_AUDIENCE: "tenancy" }).auth,
    ).toEqual({ mode: "jwt", keys: { kind: "secret", secret: SECRET }, issuer: "https://idp.example/", audience: "tenancy" });
  });

  it("reads a JWKS file or URL", () => {
    expect(loadConfig({ AUTH_MODE: "jwt", AUTH_JWKS_FILE: goodJwks }).auth).toEqual({ mode: "jwt", keys: { kind: "jwks-file", path: goodJwks } });
    expect(loadConfig({ AUTH_MODE: "jwt", AUTH_JWKS_URL: "https://idp.example/.well-known/jwks.json" }).auth).toEqual({
      mode: "jwt",
      keys: { kind: "jwks-url", url: "https://idp.example/.well-known/jwks.json" },
    });
    for (const url of ["http://127.0.0.1:9000/jwks", "http://localhost/jwks", "http://[::1]:9000/jwks"]) {
      expect(loadConfig({ AUTH_MODE: "jwt", AUTH_JWKS_URL: url }).auth).toMatchObject({ keys: { kind: "jwks-url" } });
    }
  });

  it.each([
    [{ AUTH_MODE: "jwt" }, "AUTH_MODE", /none is set/],
    [{ AUTH_MODE: "jwt", AUTH_JWT_SECRET: SECRET, AUTH_JWKS_URL: "https://idp.example/jwks" }, "AUTH_MODE", /AUTH_JWT_SECRET and AUTH_JWKS_URL are set/],
    [{ AUTH_MODE: "oauth" }, "AUTH_MODE", /must be none or jwt/],
    [{ AUTH_MODE: "jwt", AUTH_JWT_SECRET: "short" }, "AUTH_JWT_SECRET", /at least 32 bytes/],
    [{ AUTH_MODE: "jwt", AUTH_JWKS_FILE: path.join(dir, "missing.json") }, "AUTH_JWKS_FILE", /cannot be read/],
    [{ AUTH_MODE: "jwt", AUTH_JWKS_FILE: notJson }, "AUTH_JWKS_FILE", /is not JSON/],
    [{ AUTH_MODE: "jwt", AUTH_JWKS_FILE: noKeys }, "AUTH_JWKS_FILE", /not a JSON Web Key Set/],
    [{ AUTH_MODE: "jwt", AUTH_JWKS_URL: "idp.example/jwks" }, "AUTH_JWKS_URL", /not a URL/],
    [{ AUTH_MODE: "jwt", AUTH_JWKS_URL: "http://idp.example/jwks" }, "AUTH_JWKS_URL", /https/],
    [{ AUTH_MODE: "jwt", AUTH_JWKS_URL: "ftp://idp.example/jwks" }, "AUTH_JWKS_URL", /https/],
  ])("refuses %o, naming %s", (env, variable, detail) => {
    const error = refusal(env as Record<string, string>);
    expect(error.variable).toBe(variable);
    expect(error.message).toMatch(new RegExp(`^invalid configuration: ${variable} `));
    expect(error.message).toMatch(detail);
  });
});
