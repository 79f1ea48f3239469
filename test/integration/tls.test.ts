import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { copyFileSync, writeFileSync } from "node:fs";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTenancyClients, type TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { certificateDirectory, type Certificate } from "../support/certificates.js";
import { createTestDatabase } from "../support/database.js";
import { startServerProcess, type ServerProcess } from "../support/server-process.js";

const certificates = certificateDirectory();
afterAll(() => certificates.remove());

/** The certificate a TLS client is shown, with the protocol ALPN chose. */
async function handshake(port: number, alpn?: string[]): Promise<{ fingerprint: string; protocol: string | false | null }> {
  const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false, ALPNProtocols: alpn });
  try {
    await once(socket, "secureConnect");
    return { fingerprint: socket.getPeerX509Certificate()!.fingerprint256, protocol: socket.alpnProtocol };
  } finally {
    socket.destroy();
  }
}

const fingerprintOf = (certificate: Certificate) => new X509Certificate(certificate.pem).fingerprint256;

describe("HTTPS on the one port", () => {
  let server: TestServer;
  let certificate: Certificate;
  beforeAll(async () => {
    certificate = certificates.make("served");
    server = await startTestServer({ tls: { ...certificate, ca: certificate.pem } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("chooses HTTP/2 or HTTP/1.1 by ALPN, and sniffs a client that offers none", async () => {
    expect((await handshake(server.port, ["h2", "http/1.1"])).protocol).toBe("h2");
    expect((await handshake(server.port, ["http/1.1"])).protocol).toBe("http/1.1");
    const socket = tls.connect({ host: "127.0.0.1", port: server.port, servername: "localhost", ca: certificate.pem });
    await once(socket, "secureConnect");
    expect(socket.alpnProtocol).toBe(false);
    socket.end("GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let answer = "";
    for await (const chunk of socket) answer += chunk;
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/\r\n\r\n(3\r\n)?ok\n/);
  });

  const clients = (): Array<[string, TenancyClients]> => [
    ["gRPC", server.grpc],
    ["Connect (JSON) over HTTP/1.1", server.connect],
    ["Connect (binary) over HTTP/2", createTenancyClients({ baseUrl: server.baseUrl, protocol: "connect", httpVersion: "2", ca: certificate.pem })],
    ["gRPC-Web over HTTP/1.1", createTenancyClients({ baseUrl: server.baseUrl, protocol: "grpc-web", ca: certificate.pem })],
    ["gRPC-Web over HTTP/2", createTenancyClients({ baseUrl: server.baseUrl, protocol: "grpc-web", httpVersion: "2", ca: certificate.pem })],
  ];

  it("serves every protocol, the client checking the certificate", async () => {
    expect(server.baseUrl).toMatch(/^https:/);
    for (const [label, client] of clients()) {
      const tag = Math.random().toString(36).slice(2, 8);
      const created = await client.tenants.createTenant({ tenant: { name: `TLS ${tag}`, domain: `${tag}.tls.example` } });
      const read = await client.tenants.getTenant({ id: created.id });
      expect({ label, name: read.name }).toEqual({ label, name: `TLS ${tag}` });
    }
  });

  it("is refused by a client that does not trust the certificate", async () => {
    const untrusting = createTenancyClients({ baseUrl: server.baseUrl, protocol: "grpc" });
    await expect(untrusting.tenants.listTenants({})).rejects.toThrow(/self-signed certificate/);
  });
});

describe("certificate renewal", () => {
  let database: { url: string; drop(): Promise<void> };
  let server: ServerProcess | undefined;
  beforeAll(async () => {
    database = await createTestDatabase(inject("databaseServerUrl"));
  });
  afterAll(async () => {
    await server?.stop("SIGKILL");
    await database?.drop();
  });

  it("re-reads the certificate files on SIGHUP, and keeps the current ones when the new ones do not load", async () => {
    const first = certificates.make("first", "first");
    const second = certificates.make("second", "second");
    const live = { certFile: `${certificates.dir}/live.crt`, keyFile: `${certificates.dir}/live.key` };
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);

    server = await startServerProcess({ DATABASE_URL: database.url, TLS_CERT: live.certFile, TLS_KEY: live.keyFile });
    const port = server.port;
    expect(server.lines.some((line) => String(line.msg).startsWith("tenancy listening on https://"))).toBe(true);
    expect((await handshake(port)).fingerprint).toBe(fingerprintOf(first));

    copyFileSync(second.certFile, live.certFile);
    copyFileSync(second.keyFile, live.keyFile);
    server.child.kill("SIGHUP");
    await server.logged((line) => line.msg === "TLS certificate reloaded");
    expect((await handshake(port)).fingerprint).toBe(fingerprintOf(second));
    const client = createTenancyClients({ baseUrl: `https://localhost:${port}`, protocol: "grpc", ca: second.pem });
    expect((await client.tenants.listTenants({})).tenants).toEqual([]);

    writeFileSync(live.keyFile, "not a key\n");
    server.child.kill("SIGHUP");
    const refused = await server.logged((line) => String(line.msg).startsWith("TLS certificate not reloaded"));
    expect(JSON.stringify(refused)).toMatch(/TLS_KEY/);
    expect((await handshake(port)).fingerprint).toBe(fingerprintOf(second));

    expect(await server.stop()).toBe(0);
  });
});
