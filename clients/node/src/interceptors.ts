import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** The response header in which every write RPC names the sequence of the event it produced. */
export const EVENT_SEQUENCE_HEADER = "tenancy-event-sequence";

/** The event sequence a write's response headers carry, or undefined when they carry none. */
export function eventSequenceOf(headers: Headers): bigint | undefined {
  const raw = headers.get(EVENT_SEQUENCE_HEADER);
  if (raw === null || !/^\d{1,19}$/.test(raw.trim())) return undefined;
  return BigInt(raw.trim());
}

export interface RetryOptions {
  /** Attempts in all, the first one included. Default 4. */
  maxAttempts?: number;
  /** The wait before the first retry, doubled for each further one (with full jitter). Default 100 ms. */
  initialBackoffMs?: number;
  /** The longest wait between two attempts. Default 2,000 ms. */
  maxBackoffMs?: number;
  /**
   * Retry creates too, with a request_id generated for the logical call when
   * the request has none (default true). The service runs a create with a
   * request_id in a transaction of its own, where it also keeps the
   * response for retries; `false` leaves creates without one (unless the
   * caller sets it) on the service's coalesced path, and does not retry them.
   */
  creates?: boolean;
}

export const defaultRetry: Required<RetryOptions> = { maxAttempts: 4, initialBackoffMs: 100, maxBackoffMs: 2_000, creates: true };

/**
 * Full-jitter exponential backoff (the AWS architecture blog's variant):
 * random in [0, min(max, initial * 2^n)], so that clients that failed
 * together do not retry together.
 */
export function backoffMs(retryNumber: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(retryNumber, 30));
  return Math.max(1, Math.round(random() * ceiling));
}

/** Reads are safe to repeat; a create only with a request_id, which makes a repeat return the first answer. */
type RetryKind = "read" | "create" | "never";

const retryKinds = new WeakMap<DescMethod, RetryKind>();

function retryKindOf(method: DescMethod): RetryKind {
  let kind = retryKinds.get(method);
  if (kind === undefined) {
    kind =
      method.methodKind !== "unary"
        ? "never"
        : /^(Get|Lookup|List)[A-Z]/.test(method.name)
          ? "read"
          : /^Create[A-Z]/.test(method.name) && method.input.fields.some((f) => f.name === "request_id" && f.fieldKind === "scalar")
            ? "create"
            : "never";
    retryKinds.set(method, kind);
  }
  return kind;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The timeout a request header announces to the server, in ms (Connect sets it from the call's deadline). */
function announcedTimeoutMs(header: Headers): number | undefined {
  const connect = header.get("connect-timeout-ms");
  if (connect !== null) return Number(connect);
  const grpc = /^(\d+)([HMSmun])$/.exec(header.get("grpc-timeout") ?? "");
  if (!grpc) return undefined;
  const perUnit = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 }[grpc[2] as "H"];
  return Number(grpc[1]) * perUnit;
}

/** A retry tells the server the time left of the call's deadline, not the whole deadline again. */
function announceRemaining(header: Headers, remainingMs: number): void {
  const ms = String(Math.max(1, Math.ceil(remainingMs)));
  if (header.has("connect-timeout-ms")) header.set("connect-timeout-ms", ms);
  if (header.has("grpc-timeout")) header.set("grpc-timeout", `${ms}m`);
}

/**
 * UNAVAILABLE (the service answered that it, or its database, cannot be
 * reached now; or no connection could be made), or a connection lost
 * before any answer came: gRPC's own libraries report that as UNAVAILABLE,
 * Connect-Node as CANCELED (HTTP/2 stream reset) or ABORTED (socket hang
 * up). Those carry no response metadata at all, unlike every status the
 * service sends (which comes with at least a content-type), and are only
 * taken for a loss when the call's own signal (deadline, caller) did not
 * end it.
 */
function isRetryable(error: unknown): boolean {
  if (!(error instanceof ConnectError)) return false;
  if (error.code === Code.Unavailable) return true;
  return (error.code === Code.Canceled || error.code === Code.Aborted) && isEmpty(error.metadata);
}

function isEmpty(headers: Headers): boolean {
  for (const _ of headers.keys()) return false;
  return true;
}

/**
 * Retries UNAVAILABLE and lost connections (see isRetryable)
 * with backoff, within the call's deadline: reads always, creates only with
 * a request_id. A create sent without one gets a UUID here, once per logical
 * call, so that every attempt carries the same one and a retry after a lost
 * response returns the tenant the first attempt created instead of creating
 * another (AIP-155). Nothing else is retried: an update or a delete that may
 * have been applied cannot be repeated blindly.
 */
export function retryInterceptor(options: Required<RetryOptions>): Interceptor {
  return (next) => async (call) => {
    if (call.stream) return next(call);
    const kind = retryKindOf(call.method);
    if (kind === "never") return next(call);
    if (kind === "create" && !options.creates && !(call.message as { requestId?: string }).requestId) return next(call);
    let req = call;
    if (kind === "create" && !(req.message as { requestId?: string }).requestId) {
      // A copy: the caller's message object stays as it was.
      req = { ...req, message: { ...req.message, requestId: randomUUID() } as typeof req.message };
    }
    const started = performance.now();
    const timeoutMs = announcedTimeoutMs(req.header);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (error) {
        if (attempt >= options.maxAttempts || req.signal.aborted || !isRetryable(error)) throw error;
        const wait = backoffMs(attempt - 1, options.initialBackoffMs, options.maxBackoffMs);
        if (timeoutMs !== undefined && performance.now() - started + wait >= timeoutMs) throw error;
        await sleep(wait, req.signal).catch(() => {
          // The deadline (or the caller) ended the call while waiting: the
          // last answer says more than "aborted" would.
          throw error;
        });
        if (timeoutMs !== undefined) announceRemaining(req.header, timeoutMs - (performance.now() - started));
      }
    }
  };
}

/**
 * Attaches `authorization: Bearer <token>` to every attempt, asking
 * `getToken` each time, so that a token refreshed by the callback is used
 * from the next attempt on.
 */
export function bearerInterceptor(getToken: () => string | Promise<string>): Interceptor {
  return (next) => async (req) => {
    const token = await getToken();
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

/** Remembers the highest event sequence any write response carried. */
export function sequenceInterceptor(record: (sequence: bigint) => void): Interceptor {
  return (next) => async (req) => {
    const res = await next(req);
    if (!res.stream) {
      const sequence = eventSequenceOf(res.header);
      if (sequence !== undefined) record(sequence);
    }
    return res;
  };
}
