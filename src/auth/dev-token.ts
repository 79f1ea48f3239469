/**
 * Mints a development token signed with AUTH_JWT_SECRET (HS256), carrying
 * AUTH_ISSUER and AUTH_AUDIENCE when they are set:
 *
 *   AUTH_JWT_SECRET=... npm run --silent token -- --admin
 *   AUTH_JWT_SECRET=... npm run --silent token -- --sub 6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11 --ttl 600
 *
 * For development and tests only: production tokens come from the identity
 * provider.
 */
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { isUuid } from "../common/ids.js";
import { MIN_SECRET_BYTES, PLATFORM_ADMIN_SCOPE } from "./auth.config.js";

export interface DevTokenOptions {
  secret: string;
  /** The principal, a UUID. */
  sub: string;
  /** Adds the platform administrator scope. */
  admin?: boolean;
  ttlSeconds?: number;
  issuer?: string;
  audience?: string;
}

export async function mintDevToken(options: DevTokenOptions): Promise<string> {
  if (Buffer.byteLength(options.secret) < MIN_SECRET_BYTES) throw new Error(`the secret must be at least ${MIN_SECRET_BYTES} bytes long`);
  if (!isUuid(options.sub)) throw new Error(`sub must be a UUID, got "${options.sub}"`);
  let jwt = new SignJWT(options.admin ? { scope: PLATFORM_ADMIN_SCOPE } : {})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.sub)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds ?? 3600}s`);
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sub: { type: "string" },
      admin: { type: "boolean", default: false },
      ttl: { type: "string", default: "3600" },
    },
  });
  const secret = process.env.AUTH_JWT_SECRET;
  if (!secret) throw new Error("set AUTH_JWT_SECRET to the server's secret");
  const ttlSeconds = Number(values.ttl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error(`--ttl must be a positive number of seconds, got "${values.ttl}"`);
  const token = await mintDevToken({
    secret,
    sub: values.sub ?? randomUUID(),
    admin: values.admin,
    ttlSeconds,
    issuer: process.env.AUTH_ISSUER?.trim() || undefined,
    audience: process.env.AUTH_AUDIENCE?.trim() || undefined,
  });
  process.stdout.write(`${token}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((error) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
