import { readFile } from "node:fs/promises";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from "jose";
import { isUuid } from "../common/ids.js";
import { parseJwks, PLATFORM_ADMIN_SCOPE, type JwtAuthConfig, type TokenKeySource } from "./auth.config.js";
import type { Principal } from "./principal.js";

/**
 * Algorithms accepted per key source, fixed so that a token cannot choose how
 * it is checked: an HS256 token "signed" with a public key from the JWKS, or
 * an RS256 token against the shared secret, fails (algorithm confusion), and
 * `alg: none` is never on a list.
 */
const SECRET_ALGORITHMS = ["HS256"];
const JWKS_ALGORITHMS = ["RS256", "ES256", "EdDSA"];

/** Leeway for clocks that disagree a little about `exp` and `nbf`. */
const CLOCK_TOLERANCE_SECONDS = 30;

/** Anything longer is not a token this service issued keys for. */
const MAX_TOKEN_LENGTH = 8 * 1024;

const DEFAULT_JWKS_REFRESH_COOLDOWN_MS = 30_000;

/** A token that does not prove who the caller is; `cause` says why, for the logs only. */
export class InvalidTokenError extends Error {
  constructor(
    readonly why: string,
    options?: { cause?: unknown },
  ) {
    super(`invalid token: ${why}`, options);
    this.name = "InvalidTokenError";
  }
}

/**
 * The keys to check a token with cannot be had right now (the JWKS endpoint
 * is down or answers garbage, the file is gone): the caller is not at fault
 * and may retry.
 */
export class KeySetUnavailableError extends Error {
  constructor(options?: { cause?: unknown }) {
    super("the token signing keys cannot be loaded", options);
    this.name = "KeySetUnavailableError";
  }
}

export interface TokenVerifier {
  /** The principal a token proves, or InvalidTokenError. */
  verify(token: string): Promise<Principal>;
}

export function createTokenVerifier(config: JwtAuthConfig): TokenVerifier {
  const cooldownMs = config.jwksRefreshCooldownMs ?? DEFAULT_JWKS_REFRESH_COOLDOWN_MS;
  const { key, algorithms } = keyFor(config.keys, cooldownMs);
  const options: JWTVerifyOptions = {
    algorithms,
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    // A token without an expiry would be valid forever once leaked.
    requiredClaims: ["exp", "sub"],
    ...(config.issuer ? { issuer: config.issuer } : {}),
    ...(config.audience ? { audience: config.audience } : {}),
  };
  return {
    async verify(token) {
      if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError("too long");
      let payload;
      try {
        ({ payload } = await jwtVerify(token, key, options));
      } catch (error) {
        if (error instanceof KeySetUnavailableError) throw error;
        const code = error instanceof errors.JOSEError ? error.code : "ERR_UNKNOWN";
        throw new InvalidTokenError(code, { cause: error });
      }
      const sub = payload.sub;
      if (typeof sub !== "string" || !isUuid(sub)) throw new InvalidTokenError("sub is not a UUID");
      const scope = typeof payload.scope === "string" ? payload.scope.split(" ") : [];
      return { userId: sub.toLowerCase(), platformAdmin: scope.includes(PLATFORM_ADMIN_SCOPE) };
    },
  };
}

function keyFor(source: TokenKeySource, cooldownMs: number): { key: Uint8Array | JWTVerifyGetKey; algorithms: string[] } {
  switch (source.kind) {
    case "secret":
      return { key: new TextEncoder().encode(source.secret), algorithms: SECRET_ALGORITHMS };
    case "jwks-url":
      return {
        key: failingAsUnavailable(createRemoteJWKSet(new URL(source.url), { cooldownDuration: cooldownMs, timeoutDuration: 5_000 })),
        algorithms: JWKS_ALGORITHMS,
      };
    case "jwks-file":
      return { key: failingAsUnavailable(fileKeySet(source.path, cooldownMs)), algorithms: JWKS_ALGORITHMS };
  }
}

/**
 * Of the errors a key set raises, only these are about the token (its `kid`
 * or `alg`); every other one is about the key set itself.
 */
const tokenCausedKeyErrors = [errors.JWKSNoMatchingKey, errors.JWKSMultipleMatchingKeys, errors.JOSENotSupported];

function failingAsUnavailable(keySet: JWTVerifyGetKey): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await keySet(header, token);
    } catch (error) {
      // Rethrown as is: jose iterates the candidates of JWKSMultipleMatchingKeys.
      if (tokenCausedKeyErrors.some((type) => error instanceof type)) throw error;
      throw new KeySetUnavailableError({ cause: error });
    }
  };
}

/**
 * A JWKS read from a file, re-read when a token names a key it does not
 * hold (at most once per cooldown), so that keys rotate by replacing the
 * file, without a restart.
 */
function fileKeySet(path: string, cooldownMs: number): JWTVerifyGetKey {
  let keys: JWTVerifyGetKey | undefined;
  let loadedAt = 0;
  let loading: Promise<JWTVerifyGetKey> | undefined;
  const load = (): Promise<JWTVerifyGetKey> => {
    // Concurrent requests share one read.
    loading ??= readFile(path, "utf8")
      .then((text) => {
        keys = createLocalJWKSet(parseJwks(text));
        loadedAt = Date.now();
        return keys;
      })
      .finally(() => {
        loading = undefined;
      });
    return loading;
  };
  return async (header, token) => {
    const current = keys ?? (await load());
    try {
      return await current(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - loadedAt < cooldownMs) throw error;
      return (await load())(header, token);
    }
  };
}
