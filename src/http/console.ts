import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import type http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";

/** What the handler needs of a request and a response, from node:http or node:http2. */
interface Request {
  method?: string | undefined;
  url?: string | undefined;
  headers: http.IncomingHttpHeaders;
}
interface Response {
  writeHead(status: number, headers?: http.OutgoingHttpHeaders): unknown;
  end(): unknown;
  end(body: Uint8Array): unknown;
}

/** Where the console is served. */
export const CONSOLE_PATH = "/console/";

/** What the console's code is told about the server at start (GET /console/config.json). */
export interface ConsoleClientConfig {
  /** `none`: open without signing in; `jwt`: every call needs a bearer token. */
  authMode: "none" | "jwt";
  /** Set when people sign in through an OpenID provider (authorization code with PKCE). */
  oidc?: { issuer: string; clientId: string; scopes: string };
}

export interface ConsoleOptions {
  /** The built console (`npm run build:console`); default `console/dist` of this package. */
  dir?: string;
  client: ConsoleClientConfig;
  log: Logger;
}

/** One file of the build, with the encodings the build wrote next to it. */
interface StaticFile {
  type: string;
  /** Hashed asset names never change content, so browsers may keep them forever. */
  immutable: boolean;
  identity: Buffer;
  br?: Buffer;
  gzip?: Buffer;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
  ".webmanifest": "application/manifest+json",
};

/** The directory of this package (the nearest one up with a package.json), from src/ or from dist/src/. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("package.json not found above src/http/console");
    dir = parent;
  }
  return dir;
}

export function defaultConsoleDir(): string {
  return path.join(packageRoot(), "console", "dist");
}

/**
 * Every file of the build, read once: a few hundred kilobytes, and serving
 * from memory means a half-written rebuild on disk is never served.
 * Compressed copies (`x.js.br`, `x.js.gz`) are attached to their file.
 */
function loadBuild(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (relative: string) => {
    for (const name of readdirSync(path.join(dir, relative))) {
      const rel = relative ? `${relative}/${name}` : name;
      const full = path.join(dir, rel);
      if (statSync(full).isDirectory()) {
        // Vite's manifest and the size report are for the build, not for browsers.
        if (name !== ".vite") walk(rel);
        continue;
      }
      if (/\.(br|gz)$/.test(name) || name === "size.json") continue;
      const type = TYPES[path.extname(name)];
      if (!type) continue;
      const file: StaticFile = { type, immutable: rel.startsWith("assets/"), identity: readFileSync(full) };
      if (existsSync(`${full}.br`)) file.br = readFileSync(`${full}.br`);
      if (existsSync(`${full}.gz`)) file.gzip = readFileSync(`${full}.gz`);
      files.set(rel, file);
    }
  };
  walk("");
  return files;
}

function originOf(url: string): string {
  return new URL(url).origin;
}

/**
 * The console's security headers. The page loads only its own files;
 * besides the service it talks to the OpenID provider (discovery and token
 * endpoints) when one is configured. No referrer leaves the page, so the
 * authorization code briefly in the address bar after a sign-in is never
 * sent anywhere.
 */
function securityHeaders(client: ConsoleClientConfig): Record<string, string> {
  const connect = ["'self'", ...(client.oidc ? [originOf(client.oidc.issuer)] : [])].join(" ");
  return {
    "content-security-policy": [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      `connect-src ${connect}`,
      "manifest-src 'self'",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join("; "),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "x-frame-options": "DENY",
  };
}

function pickEncoding(req: Request, file: StaticFile): { body: Buffer; encoding?: "br" | "gzip" } {
  const accepted = String(req.headers["accept-encoding"] ?? "");
  if (file.br && /\bbr\b/.test(accepted)) return { body: file.br, encoding: "br" };
  if (file.gzip && /\bgzip\b/.test(accepted)) return { body: file.gzip, encoding: "gzip" };
  return { body: file.identity };
}

/**
 * Serves the admin console under /console/ (and sends `/` there): its
 * files, `config.json` (how to sign in), and index.html for every other
 * path below /console/ so that the console's own addresses survive a
 * reload. Returns false for requests it does not handle.
 */
export function createConsoleHandler(options: ConsoleOptions): (req: Request, res: Response) => boolean {
  const dir = options.dir ?? defaultConsoleDir();
  const files = existsSync(path.join(dir, "index.html")) ? loadBuild(dir) : undefined;
  if (!files) options.log.warn({ dir }, "the admin console is not built (npm run build:console): /console/ answers 503");
  const headers = securityHeaders(options.client);
  const config = Buffer.from(JSON.stringify(options.client));

  const send = (req: Request, res: Response, status: number, head: Record<string, string>, body: Buffer) => {
    res.writeHead(status, { ...headers, ...head, "content-length": String(body.length) });
    if (req.method === "HEAD") res.end();
    else res.end(body);
  };

  return (req, res) => {
    const pathname = (req.url ?? "/").split("?")[0]!;
    if (pathname === "/" || pathname === "/console") {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      res.writeHead(302, { location: CONSOLE_PATH, "content-length": "0" });
      res.end();
      return true;
    }
    if (!pathname.startsWith(CONSOLE_PATH)) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      send(req, res, 405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }, Buffer.from("method not allowed\n"));
      return true;
    }
    const rel = pathname.slice(CONSOLE_PATH.length);
    if (rel === "config.json") {
      send(req, res, 200, { "content-type": "application/json", "cache-control": "no-store" }, config);
      return true;
    }
    if (!files) {
      send(req, res, 503, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
        Buffer.from("The admin console is not built: run `npm run build:console` (npm install does it) and restart.\n"));
      return true;
    }
    // Only names of the build are looked up, so no path can reach other files.
    let file = files.get(rel);
    if (!file) {
      // A missing asset is a 404 (a page that got it would be broken); any
      // other path is one of the console's pages.
      if (rel.startsWith("assets/") || path.extname(rel) !== "") {
        send(req, res, 404, { "content-type": "text/plain; charset=utf-8" }, Buffer.from("not found\n"));
        return true;
      }
      file = files.get("index.html")!;
    }
    const { body, encoding } = pickEncoding(req, file);
    send(req, res, 200, {
      "content-type": file.type,
      "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
      vary: "accept-encoding",
      ...(encoding ? { "content-encoding": encoding } : {}),
    }, body);
    return true;
  };
}
