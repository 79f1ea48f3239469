import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WatchEventsRequestSchema, WatchEventsResponseSchema } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/**
 * WatchEvents through independent gRPC implementations: grpc-js (Node) and
 * the C-core (Python's grpcio, Debian's python3-grpcio, which CI installs).
 * The Connect protocol over HTTP/1.1 is covered in event-watch.test.ts, and
 * gRPC-Web from a browser in browser.test.ts.
 */
let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ watch: { progressIntervalMs: 200 } });
});
afterAll(async () => {
  await server?.close();
});

const tag = () => Math.random().toString(36).slice(2, 10);

async function writeThree(): Promise<{ ids: string[]; last: bigint }> {
  const ids: string[] = [];
  let last = 0n;
  for (let i = 0; i < 3; i++) {
    const tenant = await server.grpc.tenants.createTenant(
      { tenant: { name: `Proto ${tag()}`, domain: `${tag()}.protocols.example` } },
      { onHeader: (h) => (last = BigInt(h.get("tenancy-event-sequence")!)) },
    );
    ids.push(tenant.id);
  }
  return { ids, last };
}

describe("grpc-js", () => {
  it("streams the replay and live events, with proto-loader's view of the messages", async () => {
    const definition = protoLoader.loadSync(["tenancy/v1/event.proto"], {
      includeDirs: [path.resolve("proto")],
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      tenancy: { v1: { EventService: new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client } };
    };
    const client = new loaded.tenancy.v1.EventService(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as grpc.Client & {
      watchEvents(request: object): grpc.ClientReadableStream<{ kind: string; event?: { sequence: string; tenantId: string; type: string }; progress?: { sequence: string } }>;
    };
    const start = (await server.grpc.events.listEvents({ pageSize: 1 })).latestSequence;
    const replayed = await writeThree();
    const call = client.watchEvents({ afterSequence: String(start) });
    const events: Array<{ sequence: string; tenantId: string; type: string }> = [];
    let live: Awaited<ReturnType<typeof writeThree>> | undefined;
    await new Promise<void>((resolve, reject) => {
      call.on("data", (message) => {
        if (message.kind === "event") events.push(message.event!);
        // After the replay's progress, write more, then stop after the last.
        if (message.kind === "progress" && !live) void writeThree().then((w) => (live = w), reject);
        if (live && events.length === 6) resolve();
      });
      call.on("error", (error: grpc.ServiceError) => (error.code === grpc.status.CANCELLED ? undefined : reject(error)));
    });
    call.cancel();
    client.close();
    expect(events.map((e) => e.tenantId)).toEqual([...replayed.ids, ...live!.ids]);
    expect(events.map((e) => e.type)).toEqual(Array(6).fill("tenant.created"));
    expect(BigInt(events[5]!.sequence)).toBe(live!.last);
  });
});

const PYTHON = "/usr/bin/python3";
const hasGrpcio = existsSync(PYTHON) && spawnSync(PYTHON, ["-c", "import grpc"]).status === 0;

/** A generic unary-stream call through grpcio: request bytes in (hex), each response's bytes out (hex lines). */
const PYTHON_WATCHER = `
import sys, grpc
address, request, count = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
channel = grpc.insecure_channel(address)
watch = channel.unary_stream("/tenancy.v1.EventService/WatchEvents", request_serializer=lambda b: b, response_deserializer=lambda b: b)
seen = 0
for message in watch(request, timeout=20):
    print(message.hex(), flush=True)
    seen += 1
    if seen >= count:
        break
channel.close()
`;

describe.skipIf(!hasGrpcio && !process.env.CI)("grpcio (the C-core)", () => {
  it("streams the replay and live events", async () => {
    const start = (await server.grpc.events.listEvents({ pageSize: 1 })).latestSequence;
    const replayed = await writeThree();
    const request = Buffer.from(toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { afterSequence: start }))).toString("hex");
    // 3 replayed events, a progress, 3 live events.
    const child = spawn(PYTHON, ["-c", PYTHON_WATCHER, `127.0.0.1:${server.port}`, request, "7"], { stdio: ["ignore", "pipe", "pipe"] });
    const messages: ReturnType<typeof decode>[] = [];
    const decode = (line: string) => fromBinary(WatchEventsResponseSchema, Buffer.from(line, "hex"));
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    let live: Awaited<ReturnType<typeof writeThree>> | undefined;
    let buffered = "";
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        const message = decode(line.trim());
        messages.push(message);
        if (message.kind.case === "progress" && !live) void writeThree().then((w) => (live = w));
      }
    });
    const code = await exited;
    expect(code, stderr).toBe(0);
    const events = messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : []));
    expect(events.map((e) => e.tenantId)).toEqual([...replayed.ids, ...live!.ids]);
    expect(events[5]!.sequence).toBe(live!.last);
  });
});
