import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../../src/client.js";

/** Awaits a call that must fail and returns its error. */
export async function rpcError(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

export function reasonOf(error: ConnectError): string | undefined {
  return error.findDetails(ErrorInfoSchema)[0]?.reason;
}

export function violatedFields(error: ConnectError): string[] {
  return error.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field) ?? [];
}

/** Asserts code and reason (ErrorInfo) or violated fields (BadRequest) in one line. */
export function describeError(error: ConnectError): { code: string; reason?: string; fields?: string[] } {
  const out: { code: string; reason?: string; fields?: string[] } = { code: Code[error.code] };
  const reason = reasonOf(error);
  if (reason) out.reason = reason;
  const fields = violatedFields(error);
  if (fields.length) out.fields = fields;
  return out;
}
