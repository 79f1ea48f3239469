import type { JSONWebKeySet } from "jose";

/** The scope (in the token's space-separated `scope` claim) that makes a principal a platform administrator. */
export const PLATFORM_ADMIN_SCOPE = "tenancy.admin";

/** Where the keys that sign tokens come from; exactly one per deployment. */
export type TokenKeySource =
  | { kind: "secret"; secret: string }
  | { kind: "jwks-file"; path: string }
  | { kind: "jwks-url"; url: string };

export interface JwtAuthConfig {
  mode: "jwt";
  keys: TokenKeySource;
  /** When set, tokens must carry exactly this `iss`. */
  issuer?: string;
  /** When set, tokens must name this audience in `aud`. */
  audience?: string;
  /**
   * Least time between two reloads of a JWKS forced by a token whose `kid` is
   * unknown: a new key is picked up at once, yet a flood of forged kids
   * cannot turn into a flood of fetches. Not an environment variable; tests
   * lower it.
   */
  jwksRefreshCooldownMs?: number;
}

/**
 * Development only: every caller is a platform administrator and names
 * itself with the `x-actor-id` header.
 */
export interface NoAuthConfig {
  mode: "none";
}

export type AuthConfig = NoAuthConfig | JwtAuthConfig;

/** The hosts on which AUTH_MODE=none may listen: nobody else can connect. */
export const LOOPBACK_HOSTS: readonly string[] = ["127.0.0.1", "::1", "localhost"];

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.includes(host.trim().toLowerCase());
}

/** An HS256 secret shorter than the hash (256 bits) weakens it (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;

/**
 * Parses the text of a JWKS document. Only its shape is checked here; jose
 * checks each key when a token asks for it.
 */
export function parseJwks(text: string): JSONWebKeySet {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new Error("is not JSON");
  }
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === "object" && k !== null && typeof k.kty === "string")) {
    throw new Error('is not a JSON Web Key Set: expected {"keys": [...]} with at least one key');
  }
  return document as JSONWebKeySet;
}
