import { readFileSync } from "node:fs";
import { isLoopbackHost, LOOPBACK_HOSTS, MIN_SECRET_BYTES, parseJwks, type AuthConfig } from "./auth/auth.config.js";
import { readEventRelayConfig, type EventRelayConfig } from "./events/event-relay.config.js";
import { loadTlsFiles, TlsFilesError, type TlsFiles } from "./http/tls.js";

/**
 * Configuration from the environment, validated once at start-up so that a
 * typo fails fast with the variable's name instead of surfacing later.
 */
export interface Config {
  port: number;
  host: string;
  /** Unset means: start an embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  /** Apply pending migrations at start-up. */
  migrateOnStart: boolean;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Maximum connections in the database pool. */
  databasePoolSize: number;
  /** How long a request waits for a pool connection before UNAVAILABLE. */
  databaseAcquireTimeoutMs: number;
  /** How long SIGTERM/SIGINT waits for in-flight RPCs, in milliseconds. */
  shutdownGraceMs: number;
  /** Browser origins allowed by CORS; "*" allows any. */
  corsOrigins: string[];
  /** How often the database is probed for the health service, in milliseconds. */
  healthIntervalMs: number;
  /** Largest accepted request message, in bytes. */
  maxMessageBytes: number;
  /** How long a deleted tenant can be restored before it is purged. */
  tenantRetentionMs: number;
  /** How long request ids are remembered for retries. */
  requestIdRetentionMs: number;
  /** How often the purge of expired tenants and old request ids runs. */
  maintenanceIntervalMs: number;
  /** How long events of the change feed are kept. */
  eventRetentionMs: number;
  /** How long a quiet WatchEvents stream goes without a progress message. */
  watchProgressIntervalMs: number;
  /** Events a WatchEvents client may leave unread before its stream ends with RESOURCE_EXHAUSTED. */
  watchMaxBacklog: number;
  /** Keys held by the in-process tenant cache; 0 disables it. */
  tenantCacheSize: number;
  /** Server processes sharing the port (node:cluster); 1 runs in this process. */
  workers: number;
  /** How callers are authenticated (AUTH_* variables). */
  auth: AuthConfig;
  /** Where the change feed is relayed (EVENTS_NATS_* variables); unset: nowhere. */
  eventRelay: EventRelayConfig | undefined;
  /** Serve HTTPS with this certificate and key (TLS_CERT, TLS_KEY); cleartext when unset. */
  tls: TlsFiles | undefined;
  /** How long a new connection may take to finish TLS and send its first bytes, in milliseconds. */
  connectionPrefaceTimeoutMs: number;
  /** How long an HTTP/2 connection that never opens a stream stays open, in milliseconds. */
  http2NoStreamTimeoutMs: number;
  /** Serve unary gRPC through src/rpc/grpc-fast-path.ts (GRPC_FAST_PATH=off: everything through Connect). */
  grpcFastPath: boolean;
  /** The admin console at /console/ (CONSOLE_* variables); undefined when turned off. */
  console: ConsoleConfig | undefined;
}

export interface ConsoleConfig {
  /** Sign-in through an OpenID provider, whose access tokens the service verifies with its JWKS. */
  oidc?: { issuer: string; clientId: string; scopes: string };
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`invalid configuration: ${variable} ${detail}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, `must be an integer, got "${raw}"`);
  const value = Number(raw.trim());
  if (value < min || value > max) {
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration such as `30d`, `12h`, `90m`, `45s` or `500ms`. */
function duration(env: Env, name: string, fallback: string, minMs: number): number {
  const raw = (env[name]?.trim() || fallback).toLowerCase();
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(raw);
  if (!match) throw new ConfigError(name, `must be a duration such as 30d, 12h, 90m, 45s or 500ms, got "${env[name]}"`);
  const ms = Number(match[1]) * units[match[2]!]!;
  if (ms < minMs) throw new ConfigError(name, `must be at least ${minMs} ms, got "${env[name]}"`);
  return ms;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw)) return true;
  if (["0", "false", "no", "off"].includes(raw)) return false;
  throw new ConfigError(name, `must be true or false, got "${env[name]}"`);
}

function origins(env: Env): string[] {
  const raw = env.CORS_ORIGINS?.trim();
  if (!raw) return [];
  return raw.split(",").map((part) => {
    const origin = part.trim();
    if (origin === "*") return origin;
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new ConfigError("CORS_ORIGINS", `must be a comma-separated list of origins such as https://app.example.com, or *; "${origin}" is not one`);
    }
    if (url.origin !== origin.replace(/\/$/, "")) {
      throw new ConfigError("CORS_ORIGINS", `"${origin}" is not an origin (scheme://host[:port], no path)`);
    }
    return url.origin;
  });
}

/**
 * AUTH_* variables. AUTH_MODE=none makes every caller a platform
 * administrator, so it is refused unless nobody but this machine can connect;
 * key material given without AUTH_MODE=jwt is refused too, since whoever set
 * it believed authentication was on.
 */
function auth(env: Env, host: string): AuthConfig {
  const mode = env.AUTH_MODE?.trim().toLowerCase() || "none";
  const secret = env.AUTH_JWT_SECRET || undefined;
  const jwksFile = env.AUTH_JWKS_FILE?.trim() || undefined;
  const jwksUrl = env.AUTH_JWKS_URL?.trim() || undefined;
  const issuer = env.AUTH_ISSUER?.trim() || undefined;
  const audience = env.AUTH_AUDIENCE?.trim() || undefined;
  if (mode === "none") {
    const stray = (["AUTH_JWT_SECRET", "AUTH_JWKS_FILE", "AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"] as const).find((name) => env[name]?.trim());
    if (stray) {
      throw new ConfigError("AUTH_MODE", `is none (no authentication) but ${stray} is set: set AUTH_MODE=jwt to authenticate callers`);
    }
    if (!isLoopbackHost(host)) {
      throw new ConfigError(
        "AUTH_MODE",
        `is none, which makes every caller a platform administrator, so it is allowed only when HOST is a loopback address ` +
          `(${LOOPBACK_HOSTS.join(", ")}); HOST is "${host}". Set AUTH_MODE=jwt (with AUTH_JWT_SECRET, AUTH_JWKS_FILE or AUTH_JWKS_URL) to serve other hosts`,
      );
    }
    return { mode: "none" };
  }
  if (mode !== "jwt") throw new ConfigError("AUTH_MODE", `must be none or jwt, got "${env.AUTH_MODE}"`);

  const sources = [secret && "AUTH_JWT_SECRET", jwksFile && "AUTH_JWKS_FILE", jwksUrl && "AUTH_JWKS_URL"].filter(Boolean);
  if (sources.length !== 1) {
    throw new ConfigError(
      "AUTH_MODE",
      `is jwt, which needs exactly one of AUTH_JWT_SECRET (HS256), AUTH_JWKS_FILE or AUTH_JWKS_URL (RS256, ES256, EdDSA); ` +
        (sources.length === 0 ? "none is set" : `${sources.join(" and ")} are set`),
    );
  }
  const common = { mode: "jwt" as const, ...(issuer ? { issuer } : {}), ...(audience ? { audience } : {}) };
  if (secret) {
    if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
      throw new ConfigError("AUTH_JWT_SECRET", `must be at least ${MIN_SECRET_BYTES} bytes long (HS256 needs a 256-bit key)`);
    }
    return { ...common, keys: { kind: "secret", secret } };
  }
  if (jwksFile) {
    let text: string;
    try {
      text = readFileSync(jwksFile, "utf8");
    } catch (error) {
      throw new ConfigError("AUTH_JWKS_FILE", `cannot be read: ${(error as Error).message}`);
    }
    try {
      parseJwks(text);
    } catch (error) {
      throw new ConfigError("AUTH_JWKS_FILE", `(${jwksFile}) ${(error as Error).message}`);
    }
    return { ...common, keys: { kind: "jwks-file", path: jwksFile } };
  }
  let url: URL;
  try {
    url = new URL(jwksUrl!);
  } catch {
    throw new ConfigError("AUTH_JWKS_URL", `is not a URL: "${jwksUrl}"`);
  }
  // Keys fetched in clear text could be swapped by anyone on the path.
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname.replace(/^\[|\]$/g, "")))) {
    throw new ConfigError("AUTH_JWKS_URL", "must be an https:// URL (http:// is accepted only for a loopback host)");
  }
  return { ...common, keys: { kind: "jwks-url", url: url.toString() } };
}

/**
 * CONSOLE_* variables. With an OpenID provider, the console gets access
 * tokens from it and sends them to this service, so the service must verify
 * them: AUTH_MODE=jwt with the provider's keys (AUTH_JWKS_URL or
 * AUTH_JWKS_FILE; a shared secret cannot check a provider's signature), and
 * AUTH_ISSUER, when set, naming the same issuer.
 */
function consoleConfig(env: Env, auth: AuthConfig): ConsoleConfig | undefined {
  if (!boolean(env, "CONSOLE_ENABLED", true)) return undefined;
  const issuer = env.CONSOLE_OIDC_ISSUER?.trim() || undefined;
  const clientId = env.CONSOLE_OIDC_CLIENT_ID?.trim() || undefined;
  if (!issuer && !clientId) return {};
  if (!issuer || !clientId) {
    throw new ConfigError(issuer ? "CONSOLE_OIDC_CLIENT_ID" : "CONSOLE_OIDC_ISSUER", "must be set together with " + (issuer ? "CONSOLE_OIDC_ISSUER" : "CONSOLE_OIDC_CLIENT_ID"));
  }
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new ConfigError("CONSOLE_OIDC_ISSUER", `is not a URL: "${issuer}"`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname.replace(/^\[|\]$/g, "")))) {
    throw new ConfigError("CONSOLE_OIDC_ISSUER", "must be an https:// URL (http:// is accepted only for a loopback host)");
  }
  if (auth.mode !== "jwt" || auth.keys.kind === "secret") {
    throw new ConfigError(
      "CONSOLE_OIDC_ISSUER",
      "needs AUTH_MODE=jwt with the provider's keys in AUTH_JWKS_URL (its jwks_uri) or AUTH_JWKS_FILE, so that the service can verify the access tokens the console gets",
    );
  }
  if (auth.issuer !== undefined && auth.issuer !== issuer) {
    throw new ConfigError("CONSOLE_OIDC_ISSUER", `is "${issuer}" but AUTH_ISSUER is "${auth.issuer}": the service would refuse the provider's tokens`);
  }
  const scopes = env.CONSOLE_OIDC_SCOPES?.trim().split(/\s+/).join(" ") || "openid tenancy.admin";
  return { oidc: { issuer, clientId, scopes } };
}

/** TLS_CERT and TLS_KEY: both or neither, and files that load (checked now, not at the first connection). */
function tlsFiles(env: Env): TlsFiles | undefined {
  const certFile = env.TLS_CERT?.trim() || undefined;
  const keyFile = env.TLS_KEY?.trim() || undefined;
  if (!certFile && !keyFile) return undefined;
  if (!certFile) throw new ConfigError("TLS_CERT", "must be set with TLS_KEY (the PEM certificate chain to serve HTTPS with)");
  if (!keyFile) throw new ConfigError("TLS_KEY", "must be set with TLS_CERT (the PEM private key of the certificate)");
  try {
    loadTlsFiles({ certFile, keyFile });
  } catch (error) {
    if (error instanceof TlsFilesError) throw new ConfigError(error.variable, error.message.slice(error.variable.length + 1));
    throw error;
  }
  return { certFile, keyFile };
}

const logLevels = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export function loadConfig(env: Env = process.env): Config {
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(databaseUrl);
    } catch {
      throw new ConfigError("DATABASE_URL", "is not a URL (expected postgres://user:password@host:port/database)");
    }
    if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
      throw new ConfigError("DATABASE_URL", `must start with postgres:// or postgresql://, got ${url.protocol}//`);
    }
  }
  const logLevel = (env.LOG_LEVEL?.trim() || "info").toLowerCase();
  if (!(logLevels as readonly string[]).includes(logLevel)) {
    throw new ConfigError("LOG_LEVEL", `must be one of ${logLevels.join(", ")}, got "${env.LOG_LEVEL}"`);
  }
  const host = env.HOST?.trim() || "127.0.0.1";
  const authConfig = auth(env, host);
  return {
    port: integer(env, "PORT", 8080, 0, 65535),
    host,
    databaseUrl,
    dataDir: env.DATA_DIR?.trim() || ".data",
    migrateOnStart: boolean(env, "MIGRATE_ON_START", true),
    logLevel: logLevel as Config["logLevel"],
    databasePoolSize: integer(env, "DATABASE_POOL_SIZE", 10, 1, 1000),
    databaseAcquireTimeoutMs: integer(env, "DATABASE_ACQUIRE_TIMEOUT_MS", 5_000, 1, 600_000),
    shutdownGraceMs: integer(env, "SHUTDOWN_GRACE_MS", 10_000, 0, 600_000),
    corsOrigins: origins(env),
    healthIntervalMs: integer(env, "HEALTH_INTERVAL_MS", 2_000, 100, 600_000),
    maxMessageBytes: integer(env, "MAX_MESSAGE_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
    tenantRetentionMs: duration(env, "TENANT_RETENTION", "30d", 0),
    requestIdRetentionMs: duration(env, "REQUEST_ID_RETENTION", "24h", 24 * 3600 * 1000),
    maintenanceIntervalMs: duration(env, "MAINTENANCE_INTERVAL", "1m", 100),
    eventRetentionMs: duration(env, "EVENT_RETENTION", "7d", 60 * 1000),
    watchProgressIntervalMs: duration(env, "WATCH_PROGRESS_INTERVAL", "5s", 100),
    watchMaxBacklog: integer(env, "WATCH_MAX_BACKLOG", 10_000, 100, 10_000_000),
    tenantCacheSize: integer(env, "TENANT_CACHE_SIZE", 10_000, 0, 10_000_000),
    workers: integer(env, "WORKERS", 1, 1, 256),
    auth: authConfig,
    eventRelay: readEventRelayConfig(env, (variable, detail) => {
      throw new ConfigError(variable, detail);
    }),
    console: consoleConfig(env, authConfig),
    tls: tlsFiles(env),
    connectionPrefaceTimeoutMs: integer(env, "CONNECTION_PREFACE_TIMEOUT_MS", 10_000, 100, 600_000),
    http2NoStreamTimeoutMs: integer(env, "HTTP2_NO_STREAM_TIMEOUT_MS", 30_000, 100, 3_600_000),
    grpcFastPath: boolean(env, "GRPC_FAST_PATH", true),
  };
}
