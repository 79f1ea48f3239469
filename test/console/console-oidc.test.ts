import { rm } from "node:fs/promises";
import http from "node:http";
import type net from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { buildConsole, launchBrowser, openPage, screenshot, skipReason, skipWithoutChromium, type OpenedPage } from "./harness.js";

/**
 * Sign-in through an OpenID provider, end to end: a real provider
 * (oidc-provider, in this process, on its own port) with its development
 * login and consent pages, the console doing the authorization code flow
 * with PKCE in Chromium, and the service verifying the provider's JWT
 * access tokens with the provider's JWKS (AUTH_JWKS_URL).
 */
const CLIENT_ID = "tenancy-console";
const AUDIENCE = "tenancy";

describe.skipIf(skipWithoutChromium)(`signing in to the console through an OpenID provider${skipReason}`, { timeout: 120_000 }, () => {
  let provider: http.Server;
  let issuer: string;
  let server: TestServer;
  let browser: Browser;
  let consoleDir: string;
  let opened: OpenedPage | undefined;

  beforeAll(async () => {
    consoleDir = await buildConsole();
    // The provider's address must be known before the service starts (its
    // JWKS URL), and the service's before the provider is configured (the
    // client's redirect URI): listen first, hand the requests over later.
    let handle: http.RequestListener = (_req, res) => res.writeHead(503).end();
    provider = http.createServer((req, res) => handle(req, res));
    await new Promise<void>((resolve) => provider.listen(0, "127.0.0.1", resolve));
    issuer = `http://127.0.0.1:${(provider.address() as net.AddressInfo).port}`;

    server = await startTestServer({
      auth: { mode: "jwt", keys: { kind: "jwks-url", url: `${issuer}/jwks` }, issuer, audience: AUDIENCE },
      console: { dir: consoleDir, oidc: { issuer, clientId: CLIENT_ID, scopes: "openid tenancy.admin" } },
    });

    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    const signingKey = { ...(await exportJWK(privateKey)), kid: "test-es256", alg: "ES256", use: "sig" };
    const oidc = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENT_ID,
          token_endpoint_auth_method: "none",
          redirect_uris: [`${server.baseUrl}/console/`],
          grant_types: ["authorization_code"],
          response_types: ["code"],
          id_token_signed_response_alg: "ES256",
        },
      ],
      jwks: { keys: [signingKey] },
      cookies: { keys: ["console-test-cookie-key"] },
      scopes: ["openid", "tenancy.admin"],
      // Any login is accepted by the development login page; the login is the user id (a UUID, as the service wants `sub`).
      findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
      features: {
        devInteractions: { enabled: true },
        resourceIndicators: {
          enabled: true,
          // Access tokens for the tenancy API: JWTs the service can verify with the JWKS.
          defaultResource: () => "https://tenancy.test/",
          useGrantedResource: () => true,
          getResourceServerInfo: () => ({ scope: "tenancy.admin", audience: AUDIENCE, accessTokenFormat: "jwt", jwt: { sign: { alg: "ES256" } } }),
        },
      },
      // The console (another origin) reads the discovery document and calls the token endpoint.
      clientBasedCORS: (_ctx, origin) => origin === server.baseUrl,
      pkce: { methods: ["S256"], required: () => true },
    });
    handle = oidc.callback();
    browser = await launchBrowser();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    provider?.closeAllConnections();
    await new Promise((resolve) => provider?.close(resolve));
    if (consoleDir) await rm(consoleDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    const errors = opened?.pageErrors ?? [];
    await opened?.context.close();
    opened = undefined;
    expect(errors, "uncaught errors in the page").toEqual([]);
  });

  it("signs in with the authorization code flow and PKCE, and the service accepts the provider's access token", async () => {
    const userId = crypto.randomUUID();
    opened = await openPage(browser, `${server.baseUrl}/console/`);
    const { page } = opened;
    const host = new URL(issuer).host;
    await page.getByRole("button", { name: `Sign in with ${host}` }).click();

    // The provider's own pages: login, then consent.
    await page.waitForURL((url) => url.origin === issuer && url.pathname.startsWith("/interaction/"));
    await page.locator('input[name="login"]').fill(userId);
    await page.locator('input[name="password"]').fill("any password");
    await page.locator('button[type="submit"]').click();
    await page.getByRole("button", { name: "Continue" }).click();

    // Back in the console, signed in, with the code gone from the address.
    await page.getByRole("heading", { level: 1, name: "Tenants" }).waitFor();
    await page.getByText(`${userId} · platform administrator`).waitFor();
    const url = new URL(page.url());
    expect(url.origin + url.pathname).toBe(`${server.baseUrl}/console/`);
    expect(url.search).toBe("");
    // The service verified the token through the provider's JWKS: the list loaded.
    await page.getByRole("status").filter({ hasText: "No tenant matches." }).waitFor();
    const verified = server.logs.filter((l) => l.msg === "rpc" && l.procedure === "tenancy.v1.TenantService/ListTenants" && l.code === "OK");
    expect(verified.length).toBeGreaterThan(0);
    const token = await page.evaluate(() => sessionStorage.getItem("tenancy.console.token"));
    const claims = JSON.parse(Buffer.from(token!.split(".")[1]!, "base64url").toString());
    expect(claims).toMatchObject({ iss: issuer, sub: userId, aud: AUDIENCE, scope: "tenancy.admin" });
    await screenshot(page, "30-oidc-signed-in");
  });

  it("refuses an answer it did not ask for (a forged state)", async () => {
    opened = await openPage(browser, `${server.baseUrl}/console/?code=stolen&state=forged&iss=${encodeURIComponent(issuer)}`);
    const { page } = opened;
    await page.getByRole("status").filter({ hasText: "This sign-in answer was not expected by this tab" }).waitFor();
    expect(new URL(page.url()).search).toBe("");
    expect(await page.evaluate(() => sessionStorage.getItem("tenancy.console.token"))).toBeNull();
  });
});
