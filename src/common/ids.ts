import { invalidArgument, type Violations } from "./errors.js";

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}

const notUuid = (value: string) => `must be a UUID, got "${value.slice(0, 64)}"`;

/** A required UUID field of a request, in canonical lower case. */
export function requireId(id: string, field: string): string {
  if (id === "") throw invalidArgument(field, "is required");
  if (!isUuid(id)) throw invalidArgument(field, notUuid(id));
  return id.toLowerCase();
}

/** An optional UUID field (empty means unset), in canonical lower case; a malformed one is a violation. */
export function optionalId(value: string, field: string, violations: Violations): string | undefined {
  if (value === "") return undefined;
  if (!isUuid(value)) {
    violations.add(field, notUuid(value));
    return undefined;
  }
  return value.toLowerCase();
}

/** `request_id` (AIP-155) is optional, but when set it must be a UUID. */
export function checkRequestId(requestId: string): void {
  if (requestId !== "" && !isUuid(requestId)) {
    throw invalidArgument("request_id", notUuid(requestId));
  }
}
