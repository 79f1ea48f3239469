/**
 * @tenancy/client: the typed client of the tenancy service for Node.js, and
 * the TenantDirectory that keeps every tenant in memory.
 *
 *   import { createTenancyClient, reasonOf } from "@tenancy/client";
 *   const client = createTenancyClient({ baseUrl: "http://tenancy:8080", token });
 *   const directory = client.directory();
 *   await directory.ready();
 *   const tenant = directory.byDomain(host);
 *
 * The messages are the service's own generated code (one gen/ in the
 * repository, compiled into this package).
 */
export { createTenancyClient, DEFAULT_TIMEOUT_MS, type TenancyClient, type TenancyClientOptions } from "./client.js";
export {
  TenantDirectory,
  TenantDirectoryClosedError,
  TenantDirectoryNotReadyError,
  TenantDirectoryStaleError,
  type ResolveKey,
  type TenantDirectoryChange,
  type TenantDirectoryOptions,
  type TenantDirectorySource,
} from "./directory.js";
export { codeOf, ERROR_DOMAIN, errorInfoOf, fieldViolationsOf, reasonOf, type FieldViolation } from "./errors.js";
export { EVENT_SEQUENCE_HEADER, eventSequenceOf, type RetryOptions } from "./interceptors.js";
export { normalizeDomain, type DomainResult } from "../../../src/tenants/domain-name.js";
export * from "../../../gen/tenancy/v1/tenant_pb.js";
export * from "../../../gen/tenancy/v1/membership_pb.js";
export * from "../../../gen/tenancy/v1/event_pb.js";
export { BadRequestSchema, ErrorInfoSchema, type BadRequest, type BadRequest_FieldViolation, type ErrorInfo } from "../../../gen/google/rpc/error_details_pb.js";
export { Code, ConnectError } from "@connectrpc/connect";
