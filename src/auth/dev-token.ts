/**
 * `npm run token`: mints a development token signed with AUTH_JWT_SECRET
 * (HS256); `npm run token -- --help` says how (USAGE below). For development
 * and tests only: production tokens come from the identity provider.
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

const USAGE = `Usage: npm run --silent token -- [--admin] [--sub <uuid>] [--ttl <seconds>]

Prints a development JWT for AUTH_MODE=jwt, signed HS256 with AUTH_JWT_SECRET
(the server's secret), with AUTH_ISSUER and AUTH_AUDIENCE as iss and aud when
they are set. For development and tests: production tokens come from the
identity provider.

Options:
  --admin          a platform administrator (scope "${PLATFORM_ADMIN_SCOPE}")
  --sub <uuid>     the principal, a user id (default: a new random UUID)
  --ttl <seconds>  lifetime (default: 3600)
  -h, --help       this text

Examples:
  export AUTH_JWT_SECRET=$(openssl rand -hex 32)
  TOKEN=$(npm run --silent token -- --admin)
  TOKEN=$(npm run --silent token -- --sub 6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11 --ttl 600)
`;

/** A mistake in the command line: said in one line, with a pointer to --help, exit status 2. */
class UsageError extends Error {}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        sub: { type: "string" },
        admin: { type: "boolean", default: false },
        ttl: { type: "string", default: "3600" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0]!.replace(/\.$/, ""));
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const secret = process.env.AUTH_JWT_SECRET;
  if (!secret) throw new Error("set AUTH_JWT_SECRET to the server's secret");
  const ttlSeconds = Number(values.ttl);
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new UsageError(`--ttl must be a positive number of seconds, got "${values.ttl}"`);
  if (values.sub !== undefined && !isUuid(values.sub)) throw new UsageError(`--sub must be a UUID, got "${values.sub}"`);
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
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof UsageError) {
      process.stderr.write(`${message} (npm run token -- --help shows the options)\n`);
      process.exit(2);
    }
    process.stderr.write(`${message}\n`);
    process.exit(1);
  });
}
