import type { IncomingHttpHeaders } from "node:http";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Deadline } from "../common/deadline.js";
import type { Caller } from "../database/batcher.js";

const grpcUnits: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The client's deadline, from gRPC's `grpc-timeout` (also gRPC-Web's) or
 * Connect's `connect-timeout-ms`, counted from `arrival`. A malformed value
 * is no deadline here: the protocol refuses such a request anyway.
 */
export function deadlineFromHeaders(headers: IncomingHttpHeaders, arrival = Date.now()): Deadline | undefined {
  const grpc = header(headers, "grpc-timeout");
  if (grpc) {
    const match = /^(\d{1,8})([HMSmun])$/.exec(grpc);
    if (match) return arrival + Number(match[1]) * grpcUnits[match[2]!]!;
  }
  const connect = header(headers, "connect-timeout-ms");
  if (connect && /^\d{1,10}$/.test(connect)) return arrival + Number(connect);
  return undefined;
}

/**
 * The request's deadline, parsed once from its headers when it arrives
 * (see server.ts), before its body is read and before it is authorized, so
 * that every later step counts the time already spent.
 */
export const kDeadline = createContextKey<Deadline | undefined>(undefined, { description: "the client's deadline" });

export function deadlineOf(ctx: HandlerContext): Deadline | undefined {
  return ctx.values.get(kDeadline);
}

/**
 * The caller of coalesced work (src/database/batcher.ts): it stops waiting
 * when the request is cancelled or times out, and its deadline bounds the
 * shared statement.
 */
export function callerOf(ctx: HandlerContext): Caller {
  return { signal: ctx.signal, deadline: deadlineOf(ctx) };
}
