import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";

/**
 * An error from the service, as the console shows it: a sentence for people,
 * and the BadRequest field violations by field path so that each can be put
 * next to its field.
 */
export interface Problem {
  code: Code;
  /** google.rpc.ErrorInfo reason, when the service sent one. */
  reason: string | undefined;
  metadata: Record<string, string>;
  /** A sentence that says what happened and what to do. */
  message: string;
  /** Field path (as the service names it, e.g. `tenant.params.theme.color`) to descriptions. */
  fields: { field: string; description: string }[];
}

/** Sentences for the service's ErrorInfo reasons (proto/tenancy/v1). */
const REASONS: Record<string, string> = {
  TENANT_NAME_TAKEN: "Another tenant already has this name (names are compared without case, and deleted tenants keep theirs until purged).",
  TENANT_DOMAIN_TAKEN: "Another tenant already has this domain (deleted tenants keep theirs until purged).",
  TENANT_NOT_FOUND: "This tenant does not exist (any more).",
  MEMBERSHIP_NOT_FOUND: "This membership does not exist any more.",
  MEMBERSHIP_EXISTS: "This user is already a member of the tenant.",
  ETAG_MISMATCH: "Someone else changed this while you were editing it, so your change was not saved.",
  LAST_ADMIN: "This is the tenant's last administrator: make another member an administrator first.",
  TENANT_HAS_MEMBERSHIPS: "The tenant still has members: remove them first, or choose to remove them with the tenant.",
  TENANT_DELETED: "The tenant is deleted: restore it first.",
  TENANT_NOT_DELETED: "The tenant is not deleted.",
  TENANT_SUSPENDED: "The tenant is suspended and accepts no new members: activate it first.",
  REQUEST_ID_REUSED: "This form was already sent with other values: reload the page and try again.",
};

const CODES: Partial<Record<Code, string>> = {
  [Code.Unauthenticated]: "Your sign-in is no longer accepted: sign in again.",
  [Code.PermissionDenied]: "You are not allowed to do this.",
  [Code.Unavailable]: "The service cannot be reached right now: try again in a moment.",
  [Code.DeadlineExceeded]: "The service took too long to answer: try again.",
  [Code.ResourceExhausted]: "The request is too large for the service.",
  [Code.Unimplemented]: "This service does not offer this yet.",
  [Code.Internal]: "The service failed unexpectedly (its logs say why).",
  [Code.Unknown]: "The service could not be reached.",
};

export function problemOf(error: unknown): Problem {
  const connectError = ConnectError.from(error);
  const info = connectError.findDetails(ErrorInfoSchema)[0];
  const badRequest = connectError.findDetails(BadRequestSchema)[0];
  const fields = (badRequest?.fieldViolations ?? []).map((v) => ({ field: v.field, description: v.description }));
  const reason = info?.reason || undefined;
  let message: string;
  if (reason && REASONS[reason]) message = REASONS[reason]!;
  else if (connectError.code === Code.InvalidArgument) {
    message = fields.length > 0 ? "Some values are not valid: see the fields marked below." : connectError.rawMessage;
  } else if (connectError.code === Code.PermissionDenied) {
    message = `${CODES[Code.PermissionDenied]} (${connectError.rawMessage})`;
  } else message = CODES[connectError.code] ?? connectError.rawMessage;
  return { code: connectError.code, reason, metadata: info?.metadata ?? {}, message, fields };
}

/** The violations whose field is `prefix` or below it, with the rest of the path. */
export function fieldsUnder(problem: Problem | undefined, prefix: string): { rest: string; description: string }[] {
  if (!problem) return [];
  return problem.fields
    .filter((f) => f.field === prefix || f.field.startsWith(`${prefix}.`) || f.field.startsWith(`${prefix}[`))
    .map((f) => ({ rest: f.field.slice(prefix.length).replace(/^\./, ""), description: f.description }));
}

/** Descriptions of the violations of exactly this field. */
export function fieldErrors(problem: Problem | undefined, field: string): string[] {
  return problem ? problem.fields.filter((f) => f.field === field).map((f) => f.description) : [];
}

/** The violations that no field of the form shows, to list them with the message. */
export function unplacedFields(problem: Problem | undefined, placed: string[]): { field: string; description: string }[] {
  if (!problem) return [];
  return problem.fields.filter((f) => !placed.some((p) => f.field === p || f.field.startsWith(`${p}.`) || f.field.startsWith(`${p}[`)));
}
