import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

const JWKS = { AUTH_MODE: "jwt", AUTH_JWKS_URL: "https://idp.example/jwks" };

function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("the configuration was accepted");
}

describe("CONSOLE_* configuration", () => {
  it("serves the console by default, with sign-in by token", () => {
    expect(loadConfig({}).console).toEqual({});
    expect(loadConfig({ CONSOLE_ENABLED: "false" }).console).toBeUndefined();
  });

  it("takes an OpenID provider whose tokens the service verifies with its JWKS", () => {
    expect(loadConfig({ ...JWKS, CONSOLE_OIDC_ISSUER: "https://idp.example", CONSOLE_OIDC_CLIENT_ID: "console" }).console).toEqual({
      oidc: { issuer: "https://idp.example", clientId: "console", scopes: "openid tenancy.admin" },
    });
    expect(
      loadConfig({ ...JWKS, AUTH_ISSUER: "http://127.0.0.1:9000", CONSOLE_OIDC_ISSUER: "http://127.0.0.1:9000", CONSOLE_OIDC_CLIENT_ID: "c", CONSOLE_OIDC_SCOPES: " openid   tenancy.admin  profile " }).console,
    ).toEqual({ oidc: { issuer: "http://127.0.0.1:9000", clientId: "c", scopes: "openid tenancy.admin profile" } });
  });

  it.each([
    [{ ...JWKS, CONSOLE_OIDC_ISSUER: "https://idp.example" }, "CONSOLE_OIDC_CLIENT_ID", /set together/],
    [{ ...JWKS, CONSOLE_OIDC_CLIENT_ID: "console" }, "CONSOLE_OIDC_ISSUER", /set together/],
    [{ ...JWKS, CONSOLE_OIDC_ISSUER: "idp.example", CONSOLE_OIDC_CLIENT_ID: "c" }, "CONSOLE_OIDC_ISSUER", /not a URL/],
    [{ ...JWKS, CONSOLE_OIDC_ISSUER: "http://idp.example", CONSOLE_OIDC_CLIENT_ID: "c" }, "CONSOLE_OIDC_ISSUER", /https/],
    [{ CONSOLE_OIDC_ISSUER: "https://idp.example", CONSOLE_OIDC_CLIENT_ID: "c" }, "CONSOLE_OIDC_ISSUER", /AUTH_MODE=jwt/],
    [{ AUTH_MODE: "jwt", AUTH_JWT_SECRET: "x".repeat(32), CONSOLE_OIDC_ISSUER: "https://idp.example", CONSOLE_OIDC_CLIENT_ID: "c" }, "CONSOLE_OIDC_ISSUER", /AUTH_JWKS_URL/],
    [{ ...JWKS, AUTH_ISSUER: "https://other.example", CONSOLE_OIDC_ISSUER: "https://idp.example", CONSOLE_OIDC_CLIENT_ID: "c" }, "CONSOLE_OIDC_ISSUER", /AUTH_ISSUER/],
    [{ CONSOLE_ENABLED: "perhaps" }, "CONSOLE_ENABLED", /true or false/],
  ])("refuses %j, naming %s", (env, variable, message) => {
    const error = refusal(env);
    expect(error.variable).toBe(variable);
    expect(error.message).toMatch(message);
  });
});
