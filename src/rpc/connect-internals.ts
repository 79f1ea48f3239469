/**
 * Every reliance of this service on Connect-ES beyond its documented API, in
 * one place. Connect marks these "@private, does not follow semantic
 * versioning": test/unit/connect-internals.test.ts pins the behaviour relied
 * on, so that an upgrade that changes it fails there rather than on the wire.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { setTrailerStatus as connectSetTrailerStatus } from "@connectrpc/connect/protocol-grpc";

/**
 * The router's handlers and the Node adapter's conversions (Connect asks
 * to "be careful using" them): src/rpc/rpc-handler.ts serves requests with
 * them as Connect's own Node adapter does, reading unary bodies itself.
 */
export type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
export { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";

/**
 * Writes an error into gRPC trailers (or into the headers of a
 * trailers-only answer) exactly as Connect's gRPC handler does:
 * `grpc-status`, `grpc-message` and `grpc-status-details-bin`, plus the
 * error's metadata. Shared so that the fast path's and the adapter's error
 * answers cannot differ.
 */
export function setTrailerStatus(target: Headers, error: ConnectError): Headers {
  return connectSetTrailerStatus(target, error);
}

/**
 * Whether Connect refused a message because it is not valid protobuf. Its
 * binary serialization throws INTERNAL "parse binary: ..." (a client's
 * mistake, which this service answers INVALID_ARGUMENT); the only sign of it
 * is that message.
 */
export function isConnectParseError(error: unknown): error is ConnectError {
  return error instanceof ConnectError && error.code === Code.Internal && error.rawMessage.startsWith("parse binary: ");
}
