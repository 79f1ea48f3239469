import { existsSync } from "node:fs";
import http from "node:http";
import type net from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "esbuild";
import { chromium, type Browser, type Page } from "playwright-core";
import type { BrowserProtocol, RunScenario, ScenarioResult, WatchInPage } from "../browser/page.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * End to end in a real headless Chromium: a page served from another origin
 * than the service's calls it with Connect-Web (Connect and gRPC-Web), so
 * CORS, the browser's fetch and the web transports are all on the path.
 * CI installs Chromium (`apt-get install -y chromium`); locally the file is
 * skipped when it is missing.
 */
const CHROMIUM = "/usr/bin/chromium";
const skip = !existsSync(CHROMIUM) && !process.env.CI;
const TIMEOUT = 30_000;

/** A tiny static server for the page: `/` is the HTML, `/page.js` the bundle. */
async function startPageServer(script: string): Promise<{ origin: string; close(): Promise<void> }> {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>tenancy e2e</title></head><body><script type="module" src="/page.js"></script></body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(html);
    } else if (req.url === "/page.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8", "cache-control": "no-store" });
      res.end(script);
    } else {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL("../browser/page.ts", import.meta.url))],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "silent",
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error("esbuild produced no output for test/browser/page.ts");
  return file.text;
}

function tag() {
  return Math.random().toString(36).slice(2, 10);
}

describe.skipIf(skip)(
  `in a real browser with Connect-Web${skip ? ` (skipped: ${CHROMIUM} not found; install it with "apt-get install -y chromium", or set CI=true to require it)` : ""}`,
  () => {
    let server: TestServer | undefined;
    let allowed: Awaited<ReturnType<typeof startPageServer>> | undefined;
    let denied: Awaited<ReturnType<typeof startPageServer>> | undefined;
    let browser: Browser | undefined;

    beforeAll(async () => {
      const script = await bundlePage();
      allowed = await startPageServer(script);
      denied = await startPageServer(script);
      server = await startTestServer({ corsOrigins: [allowed.origin] });
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        timeout: TIMEOUT,
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
    });

    afterAll(async () => {
      // Close everything, even when one of them fails; report the first failure.
      const results = await Promise.allSettled([
        browser?.close(),
        allowed?.close(),
        denied?.close(),
      ]);
      const serverResult = await Promise.allSettled([server?.close()]);
      const failed = [...results, ...serverResult].find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    });

    /** Opens the page from `origin`, runs the scenario in it and closes it. */
    async function runInBrowser(origin: string, protocol: BrowserProtocol, t: string) {
      const context = await browser!.newContext();
      const consoleLines: string[] = [];
      try {
        const page: Page = await context.newPage();
        page.setDefaultTimeout(TIMEOUT);
        page.on("console", (message) => consoleLines.push(message.text()));
        await page.goto(`${origin}/`, { waitUntil: "load" });
        await page.waitForFunction(() => typeof (globalThis as { runScenario?: unknown }).runScenario === "function");
        const result: ScenarioResult = await page.evaluate(
          ([baseUrl, protocol, t]) => (globalThis as unknown as { runScenario: RunScenario }).runScenario(baseUrl, protocol, t),
          [server!.baseUrl, protocol, t] as const,
        );
        return { result, consoleLines };
      } finally {
        await context.close();
      }
    }

    it.each(["connect", "grpc-web"] as const)(
      "creates, reads back and lists a tenant over %s from an allowed origin",
      async (protocol) => {
        const t = tag();
        const { result, consoleLines } = await runInBrowser(allowed!.origin, protocol, t);
        if (!result.ok) throw new Error(`${protocol} failed in the browser: [${result.code}] ${result.message}\n${consoleLines.join("\n")}`);
        expect(result.created).toMatchObject({ name: `Browser ${protocol} ${t}`, domain: `${t}.browser.example` });
        expect(result.created.id).toMatch(/^[0-9a-f-]{36}$/);
        expect(result.created.createTime).toMatch(/^\d{4}-\d{2}-\d{2}T/);
        expect(result.got).toEqual(result.created);
        expect(result.listed).toEqual({ ids: [result.created.id], names: [result.created.name], totalSize: 1 });

        // The server saw the browser's requests, over the expected protocol.
        const stored = await server!.connect.tenants.getTenant({ id: result.created.id });
        expect(stored.params).toEqual({ via: protocol });
        const logged = server!.logs.filter((l) => l.msg === "rpc" && l.procedure === "tenancy.v1.TenantService/CreateTenant" && l.protocol === protocol);
        expect(logged.length).toBeGreaterThan(0);
      },
      TIMEOUT,
    );

    it.each(["connect", "grpc-web"] as const)(
      "shows a change made by another client while the page watches over %s (WatchEvents)",
      async (protocol) => {
        const t = tag();
        const tenant = await server!.grpc.tenants.createTenant({ tenant: { name: `Watched ${t}`, domain: `${t}.watched.example` } });
        const context = await browser!.newContext();
        try {
          const page: Page = await context.newPage();
          page.setDefaultTimeout(TIMEOUT);
          await page.goto(`${allowed!.origin}/`, { waitUntil: "load" });
          await page.waitForFunction(() => typeof (globalThis as { watchInPage?: unknown }).watchInPage === "function");
          await page.evaluate(
            ([baseUrl, protocol, id]) => (globalThis as unknown as { watchInPage: WatchInPage }).watchInPage(baseUrl, protocol, id),
            [server!.baseUrl, protocol, tenant.id] as const,
          );
          await page.locator("#events[data-ready]").waitFor({ state: "attached" });
          // Another client changes the tenant; the page shows it without reloading.
          await server!.grpc.tenants.updateTenant({ tenant: { id: tenant.id, params: { color: "teal" } }, updateMask: { paths: ["params.color"] } });
          await page.locator("#events li", { hasText: "tenant.updated params.color" }).waitFor();
          expect(await page.locator("#events li").allTextContents()).toEqual(["tenant.updated params.color"]);
          expect(await page.locator("#events").getAttribute("data-error")).toBeNull();
        } finally {
          await context.close();
        }
      },
      TIMEOUT,
    );

    it.each(["connect", "grpc-web"] as const)(
      "is refused by CORS over %s from an origin that is not allowed",
      async (protocol) => {
        const t = tag();
        const { result, consoleLines } = await runInBrowser(denied!.origin, protocol, t);
        expect(result.ok).toBe(false);
        if (result.ok) return;
        // fetch() itself fails (a TypeError), which Connect-Web reports as UNKNOWN.
        expect(result.code).toBe("Unknown");
        expect(result.message).toMatch(/failed to fetch/i);
        expect(consoleLines.join("\n")).toMatch(/blocked by CORS policy/);
        // The preflight stopped it: nothing was created.
        const listed = await server!.connect.tenants.listTenants({ filter: `domain = "${t}.browser.example"` });
        expect(listed.tenants).toEqual([]);
      },
      TIMEOUT,
    );
  },
);
