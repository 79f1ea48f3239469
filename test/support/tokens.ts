import { SignJWT, type JWTPayload } from "jose";
import type { Interceptor } from "@connectrpc/connect";
import { createTenancyClients, type TenancyClients } from "../../src/client.js";
import { PLATFORM_ADMIN_SCOPE } from "../../src/auth/auth.config.js";

/** The HS256 secret of the test servers that authenticate with a shared secret. */
export const TEST_SECRET = "tenancy-test-secret-0123456789-abcdefghij";
export const TEST_ISSUER = "https://issuer.test.example/";
export const TEST_AUDIENCE = "tenancy-test";

export interface TokenOptions {
  sub?: string;
  admin?: boolean;
  /** Seconds from now; negative for a token that has expired. */
  expiresIn?: number;
  /** Seconds from now; set for a token that is not valid yet. */
  notBefore?: number;
  issuer?: string;
  audience?: string;
  extra?: JWTPayload;
  secret?: string;
}

/** An HS256 token as the test server expects it, unless options say otherwise. */
export async function hsToken(options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  let jwt = new SignJWT({ ...(options.admin ? { scope: `openid ${PLATFORM_ADMIN_SCOPE}` } : {}), ...options.extra })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime(now + (options.expiresIn ?? 600))
    .setIssuer(options.issuer ?? TEST_ISSUER)
    .setAudience(options.audience ?? TEST_AUDIENCE);
  if (options.sub !== "") jwt = jwt.setSubject(options.sub ?? crypto.randomUUID());
  if (options.notBefore !== undefined) jwt = jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_SECRET));
}

/** Sends `authorization: Bearer <token>` with every call. */
export function bearer(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** gRPC clients that call as the holder of `token`. */
export function clientsWithToken(baseUrl: string, token: string): TenancyClients {
  return createTenancyClients({ baseUrl, protocol: "grpc", interceptors: [bearer(token)] });
}

/** base64url of a JSON value, to hand-craft tokens that no library would sign. */
export function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}
