import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, type ErrorInfo } from "../../../gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of the service's errors. */
export const ERROR_DOMAIN = "tenancy.v1";

/** One bad field of an INVALID_ARGUMENT: `field` is a proto field path such as `tenant.domain`. */
export interface FieldViolation {
  field: string;
  description: string;
}

function asConnectError(error: unknown): ConnectError | undefined {
  return error instanceof ConnectError ? error : undefined;
}

/**
 * The `google.rpc.ErrorInfo` of an error the service answered with
 * (ALREADY_EXISTS, NOT_FOUND, FAILED_PRECONDITION, ABORTED), or undefined
 * for anything else, including errors that are not ConnectErrors.
 */
export function errorInfoOf(error: unknown): ErrorInfo | undefined {
  return asConnectError(error)?.findDetails(ErrorInfoSchema)[0];
}

/**
 * The stable reason of a service error, such as `TENANT_NAME_TAKEN`,
 * `TENANT_NOT_FOUND`, `ETAG_MISMATCH` or `EVENTS_EXPIRED` (listed on each RPC
 * in the proto files), or undefined when the error carries none.
 *
 *   if (reasonOf(err) === "TENANT_NAME_TAKEN") ...
 */
export function reasonOf(error: unknown): string | undefined {
  return errorInfoOf(error)?.reason || undefined;
}

/**
 * The field violations of an INVALID_ARGUMENT (`google.rpc.BadRequest`): one
 * per bad field. Empty for any other error.
 */
export function fieldViolationsOf(error: unknown): FieldViolation[] {
  const details = asConnectError(error)?.findDetails(BadRequestSchema) ?? [];
  return details.flatMap((detail) => detail.fieldViolations.map(({ field, description }) => ({ field, description })));
}

/** The gRPC status code of an error (Code.Unknown for anything that is not a ConnectError). */
export function codeOf(error: unknown): Code {
  return asConnectError(error)?.code ?? Code.Unknown;
}
