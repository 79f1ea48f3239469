/**
 * Who is signed in. The bearer token lives in this tab's sessionStorage (it
 * survives a reload, not the tab, and is never put in a URL); the console
 * reads the token's claims only to decide what to offer, the service checks
 * the signature on every call.
 */

/** What the server tells the console at start (src/http/console.ts). */
export interface ConsoleConfig {
  authMode: "none" | "jwt";
  oidc?: { issuer: string; clientId: string; scopes: string };
}

export interface Identity {
  /** The token's `sub`; undefined under AUTH_MODE=none. */
  userId: string | undefined;
  /** The `tenancy.admin` scope, or everyone under AUTH_MODE=none. */
  platformAdmin: boolean;
  /** When the token stops being accepted. */
  expiresAt: Date | undefined;
  /** The bearer token, or undefined under AUTH_MODE=none. */
  token: string | undefined;
}

const TOKEN_KEY = "tenancy.console.token";
/** The scope that makes a principal a platform administrator (src/auth/auth.config.ts). */
const PLATFORM_ADMIN_SCOPE = "tenancy.admin";

export const OPEN_ACCESS: Identity = { userId: undefined, platformAdmin: true, expiresAt: undefined, token: undefined };

function base64UrlDecode(part: string): string {
  const base64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

export class TokenFormatError extends Error {}

/**
 * The identity a token claims. Checks only its form (a JWT with a `sub`)
 * and expiry, so that a pasted token that cannot work is refused at once
 * with a reason; whether it is genuine is the service's to say.
 */
export function identityFromToken(raw: string): Identity {
  const token = raw.trim().replace(/^Bearer\s+/i, "");
  const parts = token.split(".");
  if (parts.length !== 3) throw new TokenFormatError("This is not a JSON Web Token: it should be three parts separated by dots.");
  let claims: { sub?: unknown; scope?: unknown; exp?: unknown };
  try {
    claims = JSON.parse(base64UrlDecode(parts[1]!));
  } catch {
    throw new TokenFormatError("This token's payload cannot be read: was it copied completely?");
  }
  if (typeof claims.sub !== "string" || claims.sub === "") throw new TokenFormatError("This token names nobody (it has no sub claim).");
  const expiresAt = typeof claims.exp === "number" ? new Date(claims.exp * 1000) : undefined;
  if (expiresAt && expiresAt.getTime() <= Date.now()) {
    throw new TokenFormatError(`This token expired at ${expiresAt.toLocaleString()}.`);
  }
  const scopes = typeof claims.scope === "string" ? claims.scope.split(" ") : [];
  return { userId: claims.sub.toLowerCase(), platformAdmin: scopes.includes(PLATFORM_ADMIN_SCOPE), expiresAt, token };
}

export function storedIdentity(): Identity | undefined {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return undefined;
  try {
    return identityFromToken(token);
  } catch {
    sessionStorage.removeItem(TOKEN_KEY);
    return undefined;
  }
}

export function storeToken(token: string): Identity {
  const identity = identityFromToken(token);
  sessionStorage.setItem(TOKEN_KEY, identity.token!);
  return identity;
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export async function loadConfig(): Promise<ConsoleConfig> {
  const response = await fetch("/console/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`the console's configuration could not be loaded (HTTP ${response.status})`);
  return (await response.json()) as ConsoleConfig;
}
