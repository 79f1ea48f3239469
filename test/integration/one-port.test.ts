import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOnePort, type OnePort, type Request, type Response } from "../../src/http/one-port.js";

/**
 * The listener of src/http/one-port.ts on its own, with a small handler:
 * GET answers "ok"; POST /early answers after the first chunk of its body,
 * without reading the rest (as a refused oversized message is answered);
 * POST /taken is served by `takeStream` over HTTP/2.
 */
const PREFACE_TIMEOUT_MS = 300;
const NO_STREAM_TIMEOUT_MS = 400;
const handled: string[] = [];

function handler(req: Request, res: Response): void {
  handled.push(String(req.url));
  if (req.method === "POST" && req.url === "/early") {
    req.once("data", () => {
      req.pause();
      res.writeHead(413, { "content-type": "text/plain" });
      res.end("too large\n");
    });
    return;
  }
  if (req.method === "POST" && req.url === "/abandoned") {
    // A reader that gives up the way an async iterator left early does: it destroys the body.
    void (async () => {
      for await (const _chunk of req) break;
      res.writeHead(413, { "content-type": "text/plain" });
      res.end("too large\n");
    })();
    return;
  }
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("ok\n");
}

let port: OnePort;
let address: string;
beforeAll(async () => {
  port = createOnePort({
    handler,
    takeStream(stream, headers) {
      if (headers[":path"] !== "/taken") return false;
      stream.respond({ ":status": 200 }, { endStream: true });
      return true;
    },
    prefaceTimeoutMs: PREFACE_TIMEOUT_MS,
    idleSessionTimeoutMs: NO_STREAM_TIMEOUT_MS,
  });
  const bound = await port.listen(0, "127.0.0.1");
  address = `127.0.0.1:${bound.port}`;
});
afterAll(async () => {
  await port?.close(1_000);
});

function get(): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://${address}/`, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      })
      .on("error", reject);
  });
}

async function getOverHttp2(): Promise<number> {
  const session = http2.connect(`http://${address}`);
  try {
    const stream = session.request({ ":path": "/" });
    const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
    stream.resume();
    await once(stream, "end");
    return Number(headers[":status"]);
  } finally {
    session.close();
  }
}

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const [host, p] = address.split(":");
    const socket = net.connect(Number(p), host!, () => resolve(socket));
    socket.on("error", reject);
  });
}

describe("the one-port listener", () => {
  it("closes connections that never finish their first bytes, and serves others meanwhile", async () => {
    const stalled = await Promise.all(Array.from({ length: 50 }, () => connect()));
    // Half send the start of an HTTP/2 preface, half nothing at all.
    stalled.forEach((socket, i) => {
      if (i % 2 === 0) socket.write("PRI * HTTP/2");
    });
    const closed = stalled.map((socket) => once(socket, "close"));
    expect((await get()).body).toBe("ok\n");
    expect(await getOverHttp2()).toBe(200);
    await Promise.all(closed);
    expect(stalled.every((socket) => socket.destroyed)).toBe(true);
  });

  it("closes an HTTP/2 connection that never opens a stream, but not one that did", async () => {
    const unused = http2.connect(`http://${address}`);
    const used = http2.connect(`http://${address}`);
    unused.on("error", () => {});
    await Promise.all([once(unused, "connect"), once(used, "connect")]);
    const goaway = once(unused, "goaway");
    const first = used.request({ ":path": "/" });
    first.resume();
    await once(first, "end");
    await goaway;
    await once(unused, "close");
    // The used one still serves, after the unused one's limit has passed.
    expect(used.closed).toBe(false);
    const second = used.request({ ":path": "/" });
    const [headers] = (await once(second, "response")) as [http2.IncomingHttpHeaders];
    second.resume();
    expect(headers[":status"]).toBe(200);
    used.close();
  });

  it("over HTTP/1.1, reads and drops the rest of a body whose answer was sent early, and the connection serves on", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const sockets: net.Socket[] = [];
      const answer = await new Promise<number>((resolve, reject) => {
        const req = http.request(`http://${address}/early`, { method: "POST", agent }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode!));
        });
        req.on("socket", (socket) => sockets.push(socket));
        // A client still sending when the answer leaves (more than the
        // socket buffers take) must see the answer, not EPIPE.
        req.on("error", reject);
        req.end(Buffer.alloc(4 * 1024 * 1024));
      });
      expect(answer).toBe(413);
      const next = await new Promise<string>((resolve, reject) => {
        const req = http.get(`http://${address}/`, { agent }, (res) => {
          let body = "";
          res.on("data", (c) => (body += c));
          res.on("end", () => resolve(body));
        });
        req.on("socket", (socket) => sockets.push(socket));
        req.on("error", reject);
      });
      expect(next).toBe("ok\n");
      expect(sockets[1]).toBe(sockets[0]); // the same connection
    } finally {
      agent.destroy();
    }
  });

  it("over HTTP/1.1, makes an early answer the connection's last when its body was destroyed, and the next request works", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const answer = await new Promise<{ status: number; connection?: string }>((resolve, reject) => {
        const req = http.request(`http://${address}/abandoned`, { method: "POST", agent }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection }));
        });
        req.on("error", reject);
        req.write(Buffer.alloc(64 * 1024));
      });
      expect(answer).toEqual({ status: 413, connection: "close" });
      const next = await new Promise<string>((resolve, reject) => {
        http
          .get(`http://${address}/`, { agent }, (res) => {
            let body = "";
            res.on("data", (c) => (body += c));
            res.on("end", () => resolve(body));
          })
          .on("error", reject);
      });
      expect(next).toBe("ok\n");
    } finally {
      agent.destroy();
    }
  });

  it("over HTTP/2, ends a stream whose answer was sent before its body was read, so the client is not left waiting", async () => {
    const session = http2.connect(`http://${address}`);
    try {
      const stream = session.request({ ":method": "POST", ":path": "/early" });
      stream.on("error", () => {});
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      const response = once(stream, "response") as Promise<[http2.IncomingHttpHeaders]>;
      // A client that sends part of its body and waits, never ending its side.
      stream.write(Buffer.alloc(256 * 1024));
      const [headers] = await response;
      await once(stream, "close");
      expect(headers[":status"]).toBe(413);
      expect(Buffer.concat(chunks).toString()).toBe("too large\n");
      expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    } finally {
      session.close();
    }
  });

  it("gives `takeStream` the HTTP/2 streams it takes, and the handler the others", async () => {
    // What takeStreamsFirst relies on: Node's compatibility layer is the
    // one "stream" listener an HTTP/2 server with a request handler has.
    expect(http2.createServer(() => {}).listenerCount("stream")).toBe(1);
    handled.length = 0;
    const session = http2.connect(`http://${address}`);
    try {
      for (const path of ["/taken", "/other"]) {
        const stream = session.request({ ":path": path });
        const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
        stream.resume();
        expect(headers[":status"]).toBe(200);
      }
    } finally {
      session.close();
    }
    expect(handled).toEqual(["/other"]);
  });
});
