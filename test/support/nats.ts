import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { connect, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { EventSchema, type Event } from "../../gen/tenancy/v1/event_pb.js";

/** The machine's NATS with JetStream (.ci/run starts it); NATS_TEST_URL points elsewhere. */
export const NATS_URL = process.env.NATS_TEST_URL ?? "nats://127.0.0.1:4222";

/** A stream and subject prefix of this test file's own, so that files running in parallel never share messages. */
export function privateStream(): { stream: string; subjectPrefix: string } {
  const tag = randomBytes(5).toString("hex");
  return { stream: `TENANCY_EVENTS_TEST_${tag}`, subjectPrefix: `tenancy_test_${tag}` };
}

export async function connectNats(url = NATS_URL): Promise<{ nats: NatsConnection; jsm: JetStreamManager }> {
  let nats: NatsConnection;
  try {
    nats = await connect({ servers: url, timeout: 5_000 });
  } catch (error) {
    throw new Error(
      `the relay tests need a NATS server with JetStream at ${url} (.ci/run starts one: nats-server -js -a 127.0.0.1 -p 4222): ${(error as Error).message}`,
    );
  }
  return { nats, jsm: await jetstreamManager(nats) };
}

export interface RelayedMessage {
  streamSequence: number;
  subject: string;
  headers: MsgHdrs;
  event: Event;
}

/** Every message of the stream (whose subject `include` accepts), in stream order, its payload decoded. */
export async function readStream(jsm: JetStreamManager, stream: string, include: (subject: string) => boolean = () => true): Promise<RelayedMessage[]> {
  const info = await jsm.streams.info(stream);
  const messages: RelayedMessage[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const message = await jsm.streams.getMessage(stream, { seq });
    if (!message || !include(message.subject)) continue;
    messages.push({ streamSequence: message.seq, subject: message.subject, headers: message.header, event: fromBinary(EventSchema, message.data) });
  }
  return messages;
}

/** Polls `check` until it holds (a relay has no stream of its own to await). */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A nats-server of the test's own, on a free port with its own storage
 * directory, that the test may stop and start without touching the
 * machine's server.
 */
export class PrivateNatsServer {
  private process: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly storeDir: string,
  ) {}

  static async create(): Promise<PrivateNatsServer> {
    const storeDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-nats-"));
    const server = new PrivateNatsServer(await freePort(), storeDir);
    await server.start();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const binary = existsSync("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server";
    const child = spawn(binary, ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.process = child;
    let output = "";
    await new Promise<void>((resolve, reject) => {
      child.stderr!.on("data", (chunk) => {
        output += chunk;
        if (output.includes("Server is ready")) resolve();
      });
      child.once("error", (error) => reject(new Error(`cannot start ${binary} (Debian package nats-server): ${error.message}`)));
      child.once("exit", (code) => reject(new Error(`nats-server exited with ${code} before it was ready: ${output}`)));
    });
  }

  /** Kills the server without letting it shut down cleanly. */
  async kill(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  async destroy(): Promise<void> {
    await this.kill();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}
