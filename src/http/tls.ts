import { readFileSync } from "node:fs";
import tls from "node:tls";

/** Where the PEM certificate (chain) and private key are (TLS_CERT, TLS_KEY). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** A certificate or key that does not load, with the variable that names its file. */
export class TlsFilesError extends Error {
  constructor(
    readonly variable: "TLS_CERT" | "TLS_KEY",
    detail: string,
  ) {
    super(`${variable} ${detail}`);
    this.name = "TlsFilesError";
  }
}

function read(variable: "TLS_CERT" | "TLS_KEY", file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new TlsFilesError(variable, `(${file}) cannot be read: ${(error as Error).message}`);
  }
}

/**
 * Reads and checks both files: each must load on its own (so that the error
 * names the right variable), and the key must belong to the certificate.
 */
export function loadTlsFiles(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const cert = read("TLS_CERT", files.certFile);
  const key = read("TLS_KEY", files.keyFile);
  try {
    tls.createSecureContext({ cert });
  } catch (error) {
    throw new TlsFilesError("TLS_CERT", `(${files.certFile}) is not a PEM certificate: ${(error as Error).message}`);
  }
  try {
    tls.createSecureContext({ key });
  } catch (error) {
    throw new TlsFilesError("TLS_KEY", `(${files.keyFile}) is not a PEM private key (unencrypted): ${(error as Error).message}`);
  }
  try {
    tls.createSecureContext({ cert, key });
  } catch (error) {
    throw new TlsFilesError("TLS_KEY", `(${files.keyFile}) is not the key of the certificate in TLS_CERT: ${(error as Error).message}`);
  }
  return { cert, key };
}
