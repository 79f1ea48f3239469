import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "../logger.js";
import { loadTlsFiles, type TlsFiles } from "./tls.js";

export type Request = http.IncomingMessage | http2.Http2ServerRequest;
export type Response = http.ServerResponse | http2.Http2ServerResponse;

export interface OnePortOptions {
  /** Serves HTTP/1.1 requests, and the HTTP/2 streams that `takeStream` leaves. */
  handler: (req: Request, res: Response) => void;
  /**
   * Serves an HTTP/2 stream itself, before Node's compatibility layer wraps
   * it in a request and response (the gRPC fast path); true when it took it.
   */
  takeStream?: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;
  /**
   * How long a new connection may take to finish its TLS handshake and send
   * the first bytes that choose HTTP/2 or HTTP/1.1, in milliseconds.
   */
  prefaceTimeoutMs: number;
  /** How long an HTTP/2 connection that has never opened a stream stays open, in milliseconds. */
  idleSessionTimeoutMs: number;
  /** PEM certificate and key: serve HTTPS, HTTP/2 or HTTP/1.1 chosen by ALPN. */
  tls?: TlsFiles;
  log?: Logger;
}

export interface OnePort {
  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(port: number, host: string): Promise<net.AddressInfo>;
  /**
   * Stops accepting connections, lets open requests finish for up to
   * `graceMs`, then closes whatever is left. `endEndless` ends the requests
   * that never end by themselves (watch streams), once no new connection
   * comes and before connections are asked to go away.
   */
  close(graceMs: number, endEndless?: () => Promise<void>): Promise<void>;
  /**
   * Reads the certificate files again, for connections from now on; throws
   * (and keeps serving the current certificate) when they do not load.
   */
  reloadTls(): void;
  readonly secure: boolean;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/**
 * How long a request body that is still arriving after its response has
 * ended (a refused oversized message) is read and dropped before its HTTP/2
 * stream is reset or its HTTP/1.1 connection closed. Resetting at once
 * would be simpler, but Node's HTTP/2 client (and so Connect's) drops
 * response data it has received and not yet read when the reset arrives,
 * and reports a bare "premature close" instead of the answer; a closed
 * HTTP/1.1 connection makes a client that is still sending see EPIPE. The
 * same reason makes HTTP servers linger before closing a connection
 * (nginx's lingering_close).
 */
const LINGER_MS = 1_000;

/**
 * One port for every protocol. gRPC needs HTTP/2 (with prior knowledge in
 * cleartext), browsers and curl often speak HTTP/1.1: in cleartext the first
 * bytes of a connection tell which (an HTTP/2 client starts with the
 * connection preface, anything else is HTTP/1.1); over TLS, ALPN does.
 *
 * Connections are handed to an HTTP/1.1 and an HTTP/2 server that never
 * listen themselves. Until a socket is handed over, Node's own timeouts
 * (headers, requests, keep-alive) do not apply to it, so a connection that
 * never finishes its first bytes is closed after `prefaceTimeoutMs`; an
 * HTTP/2 connection that never opens a stream is closed after
 * `idleSessionTimeoutMs`. Both keep anyone from holding sockets until the
 * process runs out of descriptors.
 */
export function createOnePort(options: OnePortOptions): OnePort {
  const lingering = new Lingering();
  const h1 = http.createServer(withEarlyResponses(options.handler, lingering));
  const h2 = http2.createServer({}, withEarlyResponses(options.handler, lingering));
  if (options.takeStream) takeStreamsFirst(h2, options.takeStream);

  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.Http2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    const idle = setTimeout(() => closeSession(session), options.idleSessionTimeoutMs);
    session.once("stream", () => clearTimeout(idle));
    session.once("close", () => {
      clearTimeout(idle);
      sessions.delete(session);
    });
  });

  /** Every connection's raw socket, from accept to close (destroyed when the grace period ends). */
  const accepted = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    // No Nagle, as Node's own HTTP servers: an RPC answer is several small
    // writes (headers, data, trailers) that should not wait for an ACK.
    socket.setNoDelay(true);
  };
  const handOff = (socket: net.Socket, to: "h1" | "h2") => {
    if (to === "h2") {
      // The HTTP/2 session reads what is already buffered itself; resuming
      // here would emit it to nobody.
      h2.emit("connection", socket);
    } else {
      h1.emit("connection", socket);
      socket.resume();
    }
  };
  /** Reads the first bytes to tell an HTTP/2 preface from an HTTP/1.1 request line. */
  const sniff = (socket: net.Socket) => {
    const timer = setTimeout(() => socket.destroy(), options.prefaceTimeoutMs);
    socket.once("close", () => clearTimeout(timer));
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const n = Math.min(received.length, HTTP2_PREFACE.length);
      const matches = received.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
      if (matches && received.length < HTTP2_PREFACE.length) return; // wait for more
      clearTimeout(timer);
      socket.off("data", onData);
      socket.pause();
      socket.unshift(received);
      handOff(socket, matches ? "h2" : "h1");
    };
    socket.on("data", onData);
  };

  let credentials = options.tls ? loadTlsFiles(options.tls) : undefined;
  const listener: net.Server = credentials
    ? tls.createServer({
        ...credentials,
        ALPNProtocols: ["h2", "http/1.1"],
        handshakeTimeout: options.prefaceTimeoutMs,
      })
    : net.createServer();
  listener.on("connection", (socket: net.Socket) => {
    accepted(socket);
    if (!credentials) sniff(socket);
  });
  if (credentials) {
    // The handshake has its own timeout (handshakeTimeout above).
    listener.on("secureConnection", (socket: tls.TLSSocket) => {
      socket.on("error", () => socket.destroy());
      if (socket.alpnProtocol === "h2") handOff(socket, "h2");
      else if (socket.alpnProtocol === "http/1.1") handOff(socket, "h1");
      else sniff(socket); // a client without ALPN
    });
    // A failed handshake (or one that timed out) closes its socket; nothing to answer.
    listener.on("tlsClientError", () => {});
  }

  return {
    get secure() {
      return credentials !== undefined;
    },
    listen(port, host) {
      return new Promise((resolve, reject) => {
        listener.once("error", reject);
        listener.listen(port, host, () => {
          listener.off("error", reject);
          resolve(listener.address() as net.AddressInfo);
        });
      });
    },
    async close(graceMs, endEndless) {
      const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
      await endEndless?.();
      for (const session of sessions) session.close(); // GOAWAY: no new streams, running ones finish
      lingering.endAll();
      h1.closeIdleConnections();
      const deadline = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      const idle = setInterval(() => h1.closeIdleConnections(), 50);
      await closed;
      clearTimeout(deadline);
      clearInterval(idle);
    },
    reloadTls() {
      if (!options.tls || !(listener instanceof tls.Server)) throw new Error("the server does not serve TLS");
      const next = loadTlsFiles(options.tls);
      listener.setSecureContext(next);
      credentials = next;
    },
  };
}

/** Closes an HTTP/2 session politely (GOAWAY), and for good if its peer does not read. */
function closeSession(session: http2.Http2Session): void {
  session.close();
  setTimeout(() => session.destroy(), 1_000).unref();
}

/**
 * The compatibility layer of Node's HTTP/2 server is its only "stream"
 * listener (added with the request listener); it is set aside, and called
 * for the streams that `take` leaves. This relies on how Node builds that
 * layer: test/unit/one-port.test.ts checks it.
 */
function takeStreamsFirst(server: http2.Http2Server, take: NonNullable<OnePortOptions["takeStream"]>): void {
  const compat = server.listeners("stream") as Array<(...args: unknown[]) => void>;
  server.removeAllListeners("stream");
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    if (take(stream, headers)) return;
    for (const listener of compat) listener.call(server, stream, headers, ...rest);
  });
}

/** Requests whose response ended before them, read and dropped for a while (see LINGER_MS). */
class Lingering {
  private readonly ends = new Set<() => void>();

  add(req: Request, end: () => void): void {
    const done = () => {
      clearTimeout(timer);
      this.ends.delete(stop);
    };
    const stop = () => {
      done();
      end();
    };
    const timer = setTimeout(stop, LINGER_MS);
    this.ends.add(stop);
    req.once("end", done);
    req.once("close", done);
  }

  /** At shutdown: nobody waits for these. */
  endAll(): void {
    for (const stop of [...this.ends]) stop();
  }
}

/**
 * A response may end before its request body was read to the end: a
 * message over the size limit is refused after its length prefix, without
 * reading the rest. The client may still be sending, or may be waiting (as
 * Connect's client does) for the exchange to end, which it never would:
 *
 * - HTTP/1.1: Node stops reading such a connection for good (it drains the
 *   rest of a body only when nobody started reading it), which would stall
 *   the next request on it; and closing it at once would reset it under a
 *   client that is still sending, which then sees EPIPE instead of the
 *   answer. So the rest of the body is read and dropped, for up to
 *   LINGER_MS, after which the connection is closed. A body already
 *   destroyed by its reader cannot be read: that answer is made the
 *   connection's last (`Connection: close`).
 * - HTTP/2: the same, and then the stream is reset with NO_ERROR, as
 *   RFC 9113 section 8.1 allows. Streams served by `takeStream` do this
 *   themselves.
 */
function withEarlyResponses(handler: (req: Request, res: Response) => void, lingering: Lingering) {
  return (req: Request, res: Response) => {
    if (req instanceof http.IncomingMessage && res instanceof http.ServerResponse) {
      // A body whose reader gave up by destroying it (an async iterator
      // left early does) cannot be drained: that connection closes instead.
      const writeHead = res.writeHead;
      res.writeHead = function (this: http.ServerResponse, ...args: unknown[]) {
        if (!req.complete && req.destroyed) this.shouldKeepAlive = false;
        return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
      } as typeof res.writeHead;
      res.once("finish", () => {
        if (req.complete || req.destroyed) return;
        req.resume();
        lingering.add(req, () => req.socket.destroy());
      });
    } else if (req instanceof http2.Http2ServerRequest) {
      const stream = req.stream;
      stream.once("finish", () => {
        if (stream.readableEnded) return;
        // Also when the stream is already closed: one left paused with unread
        // data is never destroyed, and holds its connection open at shutdown.
        req.resume();
        if (!stream.closed) lingering.add(req, () => stream.close(http2.constants.NGHTTP2_NO_ERROR));
      });
    }
    handler(req, res);
  };
}
