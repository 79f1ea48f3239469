import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Certificate {
  certFile: string;
  keyFile: string;
  /** The certificate in PEM, for a client to trust. */
  pem: string;
}

export interface CertificateDirectory {
  dir: string;
  /** A new self-signed certificate for localhost and 127.0.0.1, made with the openssl command (.ci/run installs it). */
  make(name: string, commonName?: string): Certificate;
  remove(): void;
}

export function certificateDirectory(): CertificateDirectory {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tenancy-tls-"));
  return {
    dir,
    make(name, commonName = "localhost") {
      const certFile = path.join(dir, `${name}.crt`);
      const keyFile = path.join(dir, `${name}.key`);
      execFileSync(
        "openssl",
        [
          "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", keyFile, "-out", certFile, "-days", "1",
          "-subj", `/CN=${commonName}`, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      return { certFile, keyFile, pem: execFileSync("openssl", ["x509", "-in", certFile], { encoding: "utf8" }) };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
