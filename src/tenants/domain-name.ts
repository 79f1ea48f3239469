import { domainToASCII } from "node:url";

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export type DomainResult = { ok: true; domain: string } | { ok: false; reason: string };

/**
 * Normalizes a host name the same way on write and on lookup: trimmed,
 * lower-cased, one trailing dot removed, internationalized labels converted
 * to punycode with UTS #46 mapping (Node's WHATWG URL implementation, so
 * `Bücher.Example` and `xn--bcher-kva.example` are the same tenant), then
 * checked against the host name syntax of RFC 1123.
 */
export function normalizeDomain(input: string): DomainResult {
  let domain = input.trim();
  if (domain === "") return { ok: false, reason: "must not be empty" };
  if (domain.endsWith(".")) domain = domain.slice(0, -1);
  // Only non-ASCII input and punycode labels need IDNA processing (which also
  // rejects malformed punycode); other ASCII is validated as is so that the
  // error names the real problem (URL parsing accepts characters such as "_"
  // that are not valid in host names).
  // eslint-disable-next-line no-control-regex
  if (/[^\x00-\x7f]/.test(domain) || /(^|\.)xn--/i.test(domain)) {
    const ascii = domainToASCII(domain);
    if (ascii === "") return { ok: false, reason: "is not a valid internationalized domain name" };
    domain = ascii;
  }
  domain = domain.toLowerCase();
  if (domain.length > 253) return { ok: false, reason: "must be at most 253 characters (after punycode conversion)" };
  const labels = domain.split(".");
  for (const part of labels) {
    if (!label.test(part)) {
      return {
        ok: false,
        reason:
          part === ""
            ? "must not contain empty labels"
            : `label "${part.slice(0, 70)}" must be 1-63 letters, digits or inner hyphens`,
      };
    }
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) {
    return { ok: false, reason: "must be a host name, not an IP address" };
  }
  return { ok: true, domain };
}
