import { createHash } from "node:crypto";
import { invalidArgument } from "./errors.js";

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

/** AIP-158: 0 means the default, larger than the maximum means the maximum. */
export function pageSize(requested: number, field = "page_size"): number {
  if (requested < 0) throw invalidArgument(field, "must not be negative");
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

/**
 * A page token is the position after the last row of the previous page (its
 * sort key values, id last) plus a fingerprint of the query it belongs to. It
 * is opaque to clients but not secret: it is validated as untrusted input.
 */
export interface Cursor {
  /** Sort key values of the last row returned, in `order by` order, id last. */
  keys: string[];
}

interface TokenBody {
  v: 1;
  q: string;
  k: string[];
}

/** A short hash of everything that shapes the result set besides the position. */
export function queryFingerprint(parts: readonly unknown[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("base64url").slice(0, 16);
}

export function encodePageToken(fingerprint: string, cursor: Cursor): string {
  const body: TokenBody = { v: 1, q: fingerprint, k: cursor.keys };
  return Buffer.from(JSON.stringify(body)).toString("base64url");
}

/**
 * Decodes a token and checks that it was issued for the same query. Returns
 * undefined for an empty token (the first page).
 */
export function decodePageToken(
  token: string,
  fingerprint: string,
  keyCount: number,
  field = "page_token",
): Cursor | undefined {
  if (token === "") return undefined;
  const malformed = () => invalidArgument(field, "is malformed: pass the next_page_token of a previous response");
  if (token.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(token)) throw malformed();
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw malformed();
  }
  if (
    typeof body !== "object" ||
    body === null ||
    (body as TokenBody).v !== 1 ||
    typeof (body as TokenBody).q !== "string" ||
    !Array.isArray((body as TokenBody).k) ||
    (body as TokenBody).k.length !== keyCount ||
    !(body as TokenBody).k.every((k) => typeof k === "string" && k.length <= 1024)
  ) {
    throw malformed();
  }
  if ((body as TokenBody).q !== fingerprint) {
    throw invalidArgument(field, "was issued for a different filter or order: send the same filter and order_by as the request that returned it");
  }
  return { keys: (body as TokenBody).k };
}

/**
 * Cuts the `limit + 1` rows a list query fetched into one page, and the token
 * of the next page when there is one (the extra row says so).
 */
export function cutPage<Row extends { cursor: readonly string[] }>(
  rows: Row[],
  limit: number,
  fingerprint: string,
): { rows: Row[]; nextPageToken: string } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    rows: page,
    nextPageToken: rows.length > limit && last ? encodePageToken(fingerprint, { keys: [...last.cursor] }) : "",
  };
}
