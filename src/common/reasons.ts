/**
 * The `google.rpc.ErrorInfo.reason` of every error this service raises, in
 * one module that every layer may import: reasons are part of the public
 * contract (clients switch on them, the proto comments list them), so they
 * never change once released.
 */

export const TENANT_NOT_FOUND = "TENANT_NOT_FOUND";
export const TENANT_NAME_TAKEN = "TENANT_NAME_TAKEN";
export const TENANT_DOMAIN_TAKEN = "TENANT_DOMAIN_TAKEN";
export const TENANT_HAS_MEMBERSHIPS = "TENANT_HAS_MEMBERSHIPS";
export const TENANT_DELETED = "TENANT_DELETED";
export const TENANT_NOT_DELETED = "TENANT_NOT_DELETED";
export const TENANT_SUSPENDED = "TENANT_SUSPENDED";

export const MEMBERSHIP_NOT_FOUND = "MEMBERSHIP_NOT_FOUND";
export const MEMBERSHIP_EXISTS = "MEMBERSHIP_EXISTS";
export const LAST_ADMIN = "LAST_ADMIN";

export const ETAG_MISMATCH = "ETAG_MISMATCH";
export const REQUEST_ID_REUSED = "REQUEST_ID_REUSED";

export const EVENTS_EXPIRED = "EVENTS_EXPIRED";
export const WATCHER_TOO_SLOW = "WATCHER_TOO_SLOW";
