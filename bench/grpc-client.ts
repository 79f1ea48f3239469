/**
 * A minimal gRPC client on node:http2 for the load generator: one HTTP/2
 * session, unary calls with binary protobuf, the status read from the
 * trailers. Request bodies can be encoded once up front, and responses are
 * not decoded (their status is checked, and `verify` decodes a sample).
 *
 * Why not the Connect client: on this kind of machine the load generator
 * shares the CPU with the service, and the Connect client spends several
 * hundred microseconds of CPU per call; a load generator should cost as
 * little as possible, like h2load or ghz would. BENCH_CLIENT=connect uses
 * the Connect client instead.
 */
import http2 from "node:http2";
import net from "node:net";
import { create, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";

/** A gRPC length-prefixed message: flag 0 (not compressed), 4-byte length, body. */
export function frame(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

export function encode<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): Buffer {
  return frame(toBinary(schema, create(schema, init)));
}

export class GrpcError extends Error {
  constructor(
    readonly status: string,
    message: string,
  ) {
    super(`grpc-status ${status}: ${message}`);
  }
}

const requestHeaders = (path: string, timeout: string | undefined) => ({
  ":method": "POST",
  ":path": path,
  "content-type": "application/grpc+proto",
  te: "trailers",
  ...(timeout ? { "grpc-timeout": timeout } : {}),
});

/** A call's gRPC status, filled in from its trailers, or from its headers when the answer is trailers-only (errors). */
function statusOf(stream: http2.ClientHttp2Stream): { code?: string; message: string } {
  const status: { code?: string; message: string } = { message: "" };
  const read = (fields: http2.IncomingHttpHeaders) => {
    if (fields["grpc-status"] === undefined) return;
    status.code = String(fields["grpc-status"]);
    status.message = decodeURIComponent(String(fields["grpc-message"] ?? ""));
  };
  stream.on("response", read);
  stream.on("trailers", read);
  return status;
}

export class RawGrpcClient {
  private readonly session: http2.ClientHttp2Session;
  private readonly timeout: string | undefined;

  /** @param deadlineMs sent with every call as `grpc-timeout`, as a typed client does. */
  constructor(baseUrl: string, deadlineMs?: number) {
    this.timeout = deadlineMs === undefined ? undefined : `${deadlineMs}m`;
    const url = new URL(baseUrl);
    this.session = http2.connect(baseUrl, {
      createConnection: () => net.connect({ host: url.hostname, port: Number(url.port), noDelay: true }),
      // Streams that receive much (100 watchers on one connection) are not
      // held back by HTTP/2's 64 KiB default windows, as grpc-js's and
      // Go's clients are not either (they grow theirs).
      settings: { initialWindowSize: 4 << 20 },
    });
    this.session.on("connect", () => this.session.setLocalWindowSize(64 << 20));
    this.session.on("error", () => {});
    // Many concurrent streams per connection, as a busy client would.
    this.session.setMaxListeners(0);
  }

  /** One unary call; resolves with the response body (gRPC frames), rejects on a non-zero status. */
  call(path: string, body: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request(requestHeaders(path, this.timeout));
      const chunks: Buffer[] = [];
      const status = statusOf(stream);
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        if (status.code === "0") resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
        else reject(new GrpcError(status.code ?? "none", status.message || "no grpc-status"));
      });
      stream.on("error", reject);
      stream.end(body);
    });
  }

  /**
   * A server-streaming call: `onMessage` gets each response message as it
   * arrives (frames split across DATA chunks are joined). Resolves when the
   * stream ends with status 0 or is aborted, rejects on another status.
   */
  stream(path: string, body: Buffer, onMessage: (message: Uint8Array) => void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request(requestHeaders(path, undefined), { signal });
      let pending: Buffer | undefined;
      const status = statusOf(stream);
      stream.on("data", (chunk: Buffer) => {
        let data = pending ? Buffer.concat([pending, chunk]) : chunk;
        while (data.length >= 5) {
          const length = data.readUInt32BE(1);
          if (data.length < 5 + length) break;
          onMessage(data.subarray(5, 5 + length));
          data = data.subarray(5 + length);
        }
        pending = data.length > 0 ? data : undefined;
      });
      stream.on("end", () => {
        if (status.code === "0" || signal?.aborted) resolve();
        else reject(new GrpcError(status.code ?? "none", status.message || "no grpc-status"));
      });
      stream.on("error", (error) => (signal?.aborted ? resolve() : reject(error)));
      stream.end(body);
    });
  }

  close(): void {
    this.session.destroy();
  }
}

/** The message of a single-frame gRPC response body. */
export function unframe(body: Buffer): Uint8Array {
  const length = body.readUInt32BE(1);
  return body.subarray(5, 5 + length);
}
