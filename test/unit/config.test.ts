import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { certificateDirectory } from "../support/certificates.js";

describe("loadConfig", () => {
  it("has defaults for everything", () => {
    expect(loadConfig({})).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      databaseUrl: undefined,
      dataDir: ".data",
      migrateOnStart: true,
      logLevel: "info",
      corsOrigins: [],
    });
  });

  it("reads the environment", () => {
    const config = loadConfig({
      PORT: "9000",
      DATABASE_URL: "postgres://u:p@db:5432/tenancy",
      MIGRATE_ON_START: "false",
      LOG_LEVEL: "DEBUG",
      CORS_ORIGINS: "https://a.example, http://localhost:5173",
    });
    expect(config).toMatchObject({
      port: 9000,
      databaseUrl: "postgres://u:p@db:5432/tenancy",
      migrateOnStart: false,
      logLevel: "debug",
      corsOrigins: ["https://a.example", "http://localhost:5173"],
    });
  });

  it.each([
    ["PORT", "http"],
    ["PORT", "70000"],
    ["DATABASE_URL", "mysql://x"],
    ["DATABASE_URL", "not a url"],
    ["LOG_LEVEL", "loud"],
    ["MIGRATE_ON_START", "maybe"],
    ["CORS_ORIGINS", "https://a.example/path"],
    ["SHUTDOWN_GRACE_MS", "-1"],
  ])("refuses %s=%s with a message naming the variable", (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`^invalid configuration: ${variable} `));
  });
});

describe("EVENTS_NATS_*", () => {
  it("relays nothing without EVENTS_NATS_URL", () => {
    expect(loadConfig({}).eventRelay).toBeUndefined();
  });

  it("has defaults for the stream, the subject prefix and the CloudEvents source", () => {
    expect(loadConfig({ EVENTS_NATS_URL: "nats://127.0.0.1:4222" }).eventRelay).toEqual({
      servers: ["nats://127.0.0.1:4222"],
      stream: "TENANCY_EVENTS",
      subjectPrefix: "tenancy",
      source: "tenancy",
    });
  });

  it("reads several servers, credentials from the user info, and the other variables", () => {
    expect(
      loadConfig({
        EVENTS_NATS_URL: "nats://relay:s%40cret@nats-1:4222, nats://nats-2:4222",
        EVENTS_NATS_STREAM: "EVENTS_PROD",
        EVENTS_NATS_SUBJECT_PREFIX: "acme.tenancy",
        EVENTS_NATS_SOURCE: "https://tenancy.acme.example",
      }).eventRelay,
    ).toEqual({
      servers: ["nats://nats-1:4222", "nats://nats-2:4222"],
      user: "relay",
      pass: "s@cret",
      stream: "EVENTS_PROD",
      subjectPrefix: "acme.tenancy",
      source: "https://tenancy.acme.example",
    });
    expect(loadConfig({ EVENTS_NATS_URL: "tls://t0ken@nats:4222" }).eventRelay).toMatchObject({ servers: ["tls://nats:4222"], token: "t0ken" });
  });

  it.each([
    [{ EVENTS_NATS_URL: "http://nats:4222" }, "EVENTS_NATS_URL", /nats:\/\/ or tls:\/\//],
    [{ EVENTS_NATS_URL: "nats://nats:4222/path" }, "EVENTS_NATS_URL", /without a path/],
    [{ EVENTS_NATS_URL: "not a url" }, "EVENTS_NATS_URL", /comma-separated list of URLs/],
    [{ EVENTS_NATS_URL: "nats://a:b@n1:4222,nats://c:d@n2:4222" }, "EVENTS_NATS_URL", /different credentials/],
    [{ EVENTS_NATS_URL: "nats://n:4222", EVENTS_NATS_STREAM: "TENANCY.EVENTS" }, "EVENTS_NATS_STREAM", /letters, digits/],
    [{ EVENTS_NATS_URL: "nats://n:4222", EVENTS_NATS_SUBJECT_PREFIX: "tenancy.>" }, "EVENTS_NATS_SUBJECT_PREFIX", /no wildcards/],
    [{ EVENTS_NATS_URL: "nats://n:4222", EVENTS_NATS_SUBJECT_PREFIX: "tenancy..x" }, "EVENTS_NATS_SUBJECT_PREFIX", /separated by dots/],
    [{ EVENTS_NATS_URL: "nats://n:4222", EVENTS_NATS_SOURCE: "tenancy service" }, "EVENTS_NATS_SOURCE", /URI reference/],
    [{ EVENTS_NATS_STREAM: "EVENTS" }, "EVENTS_NATS_STREAM", /EVENTS_NATS_URL is not/],
  ])("refuses %j, naming %s", (env, variable, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(new RegExp(`^invalid configuration: ${variable} `));
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("never repeats a password in its messages", () => {
    expect(() => loadConfig({ EVENTS_NATS_URL: "nats://u:hunter2@n:4222/x" })).toThrow(/\*\*\*@n:4222/);
    expect(() => loadConfig({ EVENTS_NATS_URL: "nats://u:hunter2@n:4222/x" })).not.toThrow(/hunter2/);
  });
});

describe("loadConfig: connections", () => {
  it("closes stalled connections by default, with limits that can be changed", () => {
    expect(loadConfig({})).toMatchObject({ connectionPrefaceTimeoutMs: 10_000, http2NoStreamTimeoutMs: 30_000, grpcFastPath: true, tls: undefined });
    expect(loadConfig({ CONNECTION_PREFACE_TIMEOUT_MS: "2000", HTTP2_NO_STREAM_TIMEOUT_MS: "5000", GRPC_FAST_PATH: "off" })).toMatchObject({
      connectionPrefaceTimeoutMs: 2000,
      http2NoStreamTimeoutMs: 5000,
      grpcFastPath: false,
    });
  });

  it.each([
    ["CONNECTION_PREFACE_TIMEOUT_MS", "0"],
    ["HTTP2_NO_STREAM_TIMEOUT_MS", "soon"],
    ["GRPC_FAST_PATH", "fast"],
  ])("refuses %s=%s with a message naming the variable", (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(new RegExp(`^invalid configuration: ${variable} `));
  });
});

describe("loadConfig: TLS", () => {
  const certificates = certificateDirectory();
  afterAll(() => certificates.remove());
  const one = certificates.make("one");
  const other = certificates.make("other");
  const garbage = path.join(certificates.dir, "garbage.pem");
  writeFileSync(garbage, "not a certificate\n");

  it("serves TLS with both files, cleartext with neither", () => {
    expect(loadConfig({ TLS_CERT: one.certFile, TLS_KEY: one.keyFile }).tls).toEqual({ certFile: one.certFile, keyFile: one.keyFile });
    expect(loadConfig({ TLS_CERT: " ", TLS_KEY: "" }).tls).toBeUndefined();
  });

  it.each([
    ["only TLS_CERT set", { TLS_CERT: one.certFile }, "TLS_KEY", /must be set with TLS_CERT/],
    ["only TLS_KEY set", { TLS_KEY: one.keyFile }, "TLS_CERT", /must be set with TLS_KEY/],
    ["a certificate file that is missing", { TLS_CERT: path.join(certificates.dir, "missing.crt"), TLS_KEY: one.keyFile }, "TLS_CERT", /cannot be read/],
    ["a certificate file that is not PEM", { TLS_CERT: garbage, TLS_KEY: one.keyFile }, "TLS_CERT", /is not a PEM certificate/],
    ["a key file that is not PEM", { TLS_CERT: one.certFile, TLS_KEY: garbage }, "TLS_KEY", /is not a PEM private key/],
    ["a key file given as the certificate", { TLS_CERT: one.keyFile, TLS_KEY: one.keyFile }, "TLS_CERT", /is not a PEM certificate/],
    ["the key of another certificate", { TLS_CERT: one.certFile, TLS_KEY: other.keyFile }, "TLS_KEY", /is not the key of the certificate in TLS_CERT/],
  ])("refuses %s, naming the variable", (_label, env, variable, detail) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as ConfigError).message).toMatch(new RegExp(`^invalid configuration: ${variable} `));
    expect((error as ConfigError).message).toMatch(detail);
  });
});
