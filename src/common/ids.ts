import { invalidArgument } from "./errors.js";

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return uuidPattern.test(value);
}

/** A required UUID field of a request, in canonical lower case. */
export function requireId(id: string, field: string): string {
  if (id === "") throw invalidArgument(field, "is required");
  if (!isUuid(id)) throw invalidArgument(field, `must be a UUID, got "${id.slice(0, 64)}"`);
  return id.toLowerCase();
}

/** `request_id` (AIP-155) is optional, but when set it must be a UUID. */
export function checkRequestId(requestId: string): void {
  if (requestId !== "" && !isUuid(requestId)) {
    throw invalidArgument("request_id", `must be a UUID, got "${requestId.slice(0, 64)}"`);
  }
}
