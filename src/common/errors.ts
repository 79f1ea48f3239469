import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BadRequestSchema, ErrorInfoSchema, PreconditionFailureSchema } from "../../gen/google/rpc/error_details_pb.js";

/** The `google.rpc.ErrorInfo.domain` of every error this service raises. */
export const ERROR_DOMAIN = "tenancy.v1";

export interface FieldViolation {
  /** Path of the field in the request, with proto names: `tenant.domain`. */
  field: string;
  description: string;
}

/**
 * Domain errors: what services and repositories throw. Only the error
 * interceptor turns them into gRPC statuses, so that the wire format of an
 * error is decided in one place.
 */
export abstract class DomainError extends Error {
  abstract readonly code: Code;
}

/** INVALID_ARGUMENT, with one `google.rpc.BadRequest` field violation per bad field. */
export class InvalidArgumentError extends DomainError {
  readonly code = Code.InvalidArgument;
  constructor(readonly violations: FieldViolation[]) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join("; "));
  }
}

/** DEADLINE_EXCEEDED: the caller's deadline passed before its database work could start. */
export class DeadlineExceededError extends DomainError {
  readonly code = Code.DeadlineExceeded;
  constructor(message = "the deadline passed before the request could be served") {
    super(message);
  }
}

/** An error with a stable `google.rpc.ErrorInfo` reason. */
export abstract class ReasonedError extends DomainError {
  constructor(
    readonly reason: string,
    message: string,
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
  }
}

export class NotFoundError extends ReasonedError {
  readonly code = Code.NotFound;
}
export class AlreadyExistsError extends ReasonedError {
  readonly code = Code.AlreadyExists;
}
export class FailedPreconditionError extends ReasonedError {
  readonly code = Code.FailedPrecondition;
}
export class AbortedError extends ReasonedError {
  readonly code = Code.Aborted;
}
export class ResourceExhaustedError extends ReasonedError {
  readonly code = Code.ResourceExhausted;
}

/** One entry of a `google.rpc.PreconditionFailure`. */
export interface PreconditionViolation {
  type: string;
  subject: string;
  description: string;
}

/** FAILED_PRECONDITION that also lists what failed, as a `google.rpc.PreconditionFailure`. */
export class PreconditionFailuresError extends FailedPreconditionError {
  constructor(
    reason: string,
    message: string,
    metadata: Record<string, string>,
    readonly violations: PreconditionViolation[],
  ) {
    super(reason, message, metadata);
  }
}

/**
 * Messages quote client input, which may be cut in the middle of a surrogate
 * pair or carry a lone one; such text cannot be percent-encoded into the
 * grpc-message header, so it is made well-formed first.
 */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

export function toConnectError(error: DomainError): ConnectError {
  const message = wellFormed(error.message);
  if (error instanceof InvalidArgumentError) {
    return new ConnectError(message, error.code, undefined, [
      {
        desc: BadRequestSchema,
        value: create(BadRequestSchema, {
          fieldViolations: error.violations.map((v) => ({ field: wellFormed(v.field), description: wellFormed(v.description) })),
        }),
      },
    ]);
  }
  if (error instanceof ReasonedError) {
    const metadata = Object.fromEntries(Object.entries(error.metadata).map(([k, v]) => [k, wellFormed(v)]));
    const details: ConstructorParameters<typeof ConnectError>[3] = [
      {
        desc: ErrorInfoSchema,
        value: create(ErrorInfoSchema, { reason: error.reason, domain: ERROR_DOMAIN, metadata }),
      },
    ];
    if (error instanceof PreconditionFailuresError) {
      details.push({
        desc: PreconditionFailureSchema,
        value: create(PreconditionFailureSchema, {
          violations: error.violations.map((v) => ({ type: v.type, subject: wellFormed(v.subject), description: wellFormed(v.description) })),
        }),
      });
    }
    return new ConnectError(message, error.code, undefined, details);
  }
  return new ConnectError(message, error.code);
}

/**
 * Collects field violations so that a request with several bad fields gets
 * them all in one answer.
 */
export class Violations {
  private readonly list: FieldViolation[] = [];

  add(field: string, description: string): void {
    this.list.push({ field, description });
  }

  get empty(): boolean {
    return this.list.length === 0;
  }

  /** Whether a violation concerns this field or one inside it. */
  has(field: string): boolean {
    return this.list.some((v) => v.field === field || v.field.startsWith(`${field}.`) || v.field.startsWith(`${field}[`));
  }

  /** Throws INVALID_ARGUMENT when any violation was added. */
  throwIfAny(): void {
    if (this.list.length > 0) throw new InvalidArgumentError(this.list);
  }
}

export function invalidArgument(field: string, description: string): InvalidArgumentError {
  return new InvalidArgumentError([{ field, description }]);
}
