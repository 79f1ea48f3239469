/**
 * The EVENTS_NATS_* variables: where the change feed is relayed (see
 * src/events/event.relay.ts). Without EVENTS_NATS_URL there is no relay.
 */
export interface EventRelayConfig {
  /** NATS server URLs (`nats://host:port`); the client moves between them on failure. */
  servers: string[];
  /** From the URLs' user info: `user:password@` or `token@`. */
  user?: string;
  pass?: string;
  token?: string;
  /** The JetStream stream, created when missing. */
  stream: string;
  /** Subjects are `<prefix>.<event type>.<tenant id>`. */
  subjectPrefix: string;
  /** The CloudEvents `source` of every message. */
  source: string;
}

export const DEFAULT_EVENTS_STREAM = "TENANCY_EVENTS";
export const DEFAULT_EVENTS_SUBJECT_PREFIX = "tenancy";
export const DEFAULT_EVENTS_SOURCE = "tenancy";

type Env = Record<string, string | undefined>;
type Fail = (variable: string, detail: string) => never;

const RELAY_VARIABLES = ["EVENTS_NATS_STREAM", "EVENTS_NATS_SUBJECT_PREFIX", "EVENTS_NATS_SOURCE"] as const;

/** NATS forbids whitespace, `.`, `*`, `>` and path separators in stream names. */
const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/** Reads EVENTS_NATS_*; `fail` throws the configuration's error for a variable. */
export function readEventRelayConfig(env: Env, fail: Fail): EventRelayConfig | undefined {
  const raw = env.EVENTS_NATS_URL?.trim();
  if (!raw) {
    // Whoever set these expected a relay.
    const stray = RELAY_VARIABLES.find((name) => env[name]?.trim());
    if (stray) fail(stray, "is set but EVENTS_NATS_URL is not: set EVENTS_NATS_URL to relay events to NATS");
    return undefined;
  }
  const servers: string[] = [];
  const credentials = new Set<string>();
  let user: string | undefined;
  let pass: string | undefined;
  for (const part of raw.split(",")) {
    const text = part.trim();
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      fail("EVENTS_NATS_URL", `must be a comma-separated list of URLs such as nats://127.0.0.1:4222; "${redactUserInfo(text)}" is not one`);
    }
    if (url.protocol !== "nats:" && url.protocol !== "tls:") {
      fail("EVENTS_NATS_URL", `URLs must start with nats:// or tls://, got ${url.protocol}//`);
    }
    if (!url.hostname) fail("EVENTS_NATS_URL", `"${redactUserInfo(text)}" names no host`);
    if ((url.pathname && url.pathname !== "/") || url.search || url.hash) {
      fail("EVENTS_NATS_URL", `"${redactUserInfo(text)}" must be scheme://[user:password@]host[:port], without a path or query`);
    }
    if (url.username || url.password) {
      credentials.add(`${url.username}:${url.password}`);
      user = decodeURIComponent(url.username);
      pass = url.password ? decodeURIComponent(url.password) : undefined;
    }
    servers.push(`${url.protocol}//${url.host}`);
  }
  if (credentials.size > 1) fail("EVENTS_NATS_URL", "names different credentials in different URLs; use the same user info in all, or in one");

  const stream = env.EVENTS_NATS_STREAM?.trim() || DEFAULT_EVENTS_STREAM;
  if (!STREAM_NAME.test(stream)) {
    fail("EVENTS_NATS_STREAM", `must be 1-64 letters, digits, "_" or "-", got "${env.EVENTS_NATS_STREAM}"`);
  }
  const subjectPrefix = env.EVENTS_NATS_SUBJECT_PREFIX?.trim() || DEFAULT_EVENTS_SUBJECT_PREFIX;
  if (!SUBJECT_PREFIX.test(subjectPrefix) || subjectPrefix.length > 128) {
    fail(
      "EVENTS_NATS_SUBJECT_PREFIX",
      `must be subject tokens of letters, digits, "_" or "-" separated by dots (no wildcards), at most 128 characters, got "${env.EVENTS_NATS_SUBJECT_PREFIX}"`,
    );
  }
  const source = env.EVENTS_NATS_SOURCE?.trim() || DEFAULT_EVENTS_SOURCE;
  // CloudEvents' source is a URI-reference: no whitespace or control characters.
  if (source.length > 256 || /[\s\p{Cc}]/u.test(source)) {
    fail("EVENTS_NATS_SOURCE", `must be a URI reference (such as tenancy or https://tenancy.example.com) without spaces, at most 256 characters`);
  }
  // A URL's user info without a password is a token, as NATS' own clients read it.
  const auth = user === undefined ? {} : pass === undefined ? { token: user } : { user, pass };
  return { servers, ...auth, stream, subjectPrefix, source };
}

function redactUserInfo(text: string): string {
  return text.replace(/\/\/[^@/]*@/, "//***@");
}
