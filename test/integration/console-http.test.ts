import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { brotliCompressSync, gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { TEST_SECRET } from "../support/tokens.js";

/**
 * How the service serves the console's files (src/http/console.ts), on a
 * small stand-in build: the browser tests (test/console/) use the real one.
 */
interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(baseUrl: string, pathname: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${pathname}`, { method: options.method ?? "GET", headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

const INDEX = '<!doctype html><html><head><script type="module" src="/console/assets/index-abc123.js"></script></head><body></body></html>';
const SCRIPT = `console.log(${JSON.stringify("x".repeat(2000))});`;

describe("the console's files", () => {
  let build: string;
  let server: TestServer;
  let oidcServer: TestServer;
  let unbuilt: TestServer;
  let off: TestServer;

  beforeAll(async () => {
    build = await mkdtemp(path.join(os.tmpdir(), "console-http-"));
    await mkdir(path.join(build, "assets"));
    await mkdir(path.join(build, ".vite"));
    await writeFile(path.join(build, "index.html"), INDEX);
    await writeFile(path.join(build, "assets", "index-abc123.js"), SCRIPT);
    await writeFile(path.join(build, "assets", "index-abc123.js.br"), brotliCompressSync(SCRIPT));
    await writeFile(path.join(build, "assets", "index-abc123.js.gz"), gzipSync(SCRIPT));
    await writeFile(path.join(build, ".vite", "manifest.json"), "{}");
    await writeFile(path.join(build, "size.json"), "{}");
    server = await startTestServer({ console: { dir: build } });
    oidcServer = await startTestServer({
      auth: { mode: "jwt", keys: { kind: "jwks-url", url: "https://idp.example/jwks" } },
      console: { dir: build, oidc: { issuer: "https://idp.example/realms/acme", clientId: "console", scopes: "openid tenancy.admin" } },
    });
    unbuilt = await startTestServer({ console: { dir: path.join(build, "missing") } });
    off = await startTestServer({ auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET } } });
  });

  afterAll(async () => {
    await Promise.all([server?.close(), oidcServer?.close(), unbuilt?.close(), off?.close()]);
    await rm(build, { recursive: true, force: true });
  });

  it("serves index.html with a strict content security policy, for the console's own pages too", async () => {
    for (const pathname of ["/console/", "/console/tenants/0b0c7d1e-2a3b-4c5d-8e9f-a0b1c2d3e4f5/members", "/console/tenants/new?x=1"]) {
      const answer = await request(server.baseUrl, pathname);
      expect(answer.status).toBe(200);
      expect(answer.body.toString()).toBe(INDEX);
      expect(answer.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(answer.headers["cache-control"]).toBe("no-cache");
      expect(answer.headers["content-security-policy"]).toContain("script-src 'self'");
      expect(answer.headers["content-security-policy"]).toContain("connect-src 'self';");
      expect(answer.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
      expect(answer.headers["referrer-policy"]).toBe("no-referrer");
      expect(answer.headers["x-content-type-options"]).toBe("nosniff");
    }
  });

  it("serves hashed assets for a year, compressed as the browser accepts", async () => {
    const br = await request(server.baseUrl, "/console/assets/index-abc123.js", { headers: { "accept-encoding": "gzip, deflate, br" } });
    expect(br.headers["content-encoding"]).toBe("br");
    expect(br.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(br.headers.vary).toBe("accept-encoding");
    expect(br.body.length).toBeLessThan(SCRIPT.length);
    const gzip = await request(server.baseUrl, "/console/assets/index-abc123.js", { headers: { "accept-encoding": "gzip" } });
    expect(gzip.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(gzip.body).toString()).toBe(SCRIPT);
    const plain = await request(server.baseUrl, "/console/assets/index-abc123.js");
    expect(plain.headers["content-encoding"]).toBeUndefined();
    expect(plain.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(plain.body.toString()).toBe(SCRIPT);
    const head = await request(server.baseUrl, "/console/assets/index-abc123.js", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(SCRIPT.length));
    expect(head.body.length).toBe(0);
  });

  it("answers 404 for files that are not in the build, whatever the path says", async () => {
    for (const pathname of ["/console/assets/missing.js", "/console/.vite/manifest.json", "/console/size.json", "/console/assets/index-abc123.js.br", "/console/../package.json", "/console/%2e%2e/package.json", "/console/assets/..%2f..%2fpackage.json"]) {
      const answer = await request(server.baseUrl, pathname);
      expect([404, 200], pathname).toContain(answer.status);
      // Whatever is answered is never a file from outside the build.
      expect(answer.body.toString(), pathname).not.toContain('"name": "tenancy"');
      if (answer.status === 200) expect(answer.body.toString()).toBe(INDEX);
    }
    expect((await request(server.baseUrl, "/console/assets/missing.js")).status).toBe(404);
  });

  it("refuses methods other than GET and HEAD", async () => {
    const answer = await request(server.baseUrl, "/console/", { method: "POST" });
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe("GET, HEAD");
  });

  it("sends / and /console to /console/", async () => {
    for (const pathname of ["/", "/console"]) {
      const answer = await request(server.baseUrl, pathname);
      expect(answer.status).toBe(302);
      expect(answer.headers.location).toBe("/console/");
    }
  });

  it("tells the console how to sign in, and lets it reach the OpenID provider", async () => {
    const open = await request(server.baseUrl, "/console/config.json");
    expect(JSON.parse(open.body.toString())).toEqual({ authMode: "none" });
    expect(open.headers["cache-control"]).toBe("no-store");
    const oidc = await request(oidcServer.baseUrl, "/console/config.json");
    expect(JSON.parse(oidc.body.toString())).toEqual({
      authMode: "jwt",
      oidc: { issuer: "https://idp.example/realms/acme", clientId: "console", scopes: "openid tenancy.admin" },
    });
    const page = await request(oidcServer.baseUrl, "/console/");
    expect(page.headers["content-security-policy"]).toContain("connect-src 'self' https://idp.example;");
  });

  it("says how to build the console when it is not built, and is absent when turned off", async () => {
    const answer = await request(unbuilt.baseUrl, "/console/");
    expect(answer.status).toBe(503);
    expect(answer.body.toString()).toContain("npm run build:console");
    expect(unbuilt.logs.some((l) => l.msg === "the admin console is not built (npm run build:console): /console/ answers 503")).toBe(true);
    expect((await request(off.baseUrl, "/console/")).status).toBe(404);
    expect((await request(off.baseUrl, "/")).status).toBe(404);
    // The service's own endpoints are untouched.
    expect((await request(server.baseUrl, "/healthz")).status).toBe(200);
  });
});
