import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { once } from "node:events";

export type LogLine = Record<string, unknown>;

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  /** host:port it listens on. */
  address: string;
  port: number;
  lines: LogLine[];
  /** The first log line (already written or to come) that passes `test`. */
  logged(test: (line: LogLine) => boolean): Promise<LogLine>;
  /** Sends the signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The real service (src/main.ts) in a child process, with this environment on top of the test's. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    env: { ...process.env, PORT: "0", LOG_LEVEL: "info", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const lines: LogLine[] = [];
  const waiters: Array<{ test: (line: LogLine) => boolean; resolve: (line: LogLine) => void }> = [];
  let buffer = "";
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.stdout.on("data", (chunk) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf("\n")) >= 0) {
      const line = JSON.parse(buffer.slice(0, i)) as LogLine;
      buffer = buffer.slice(i + 1);
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  const exited = once(child, "exit");
  const logged = (test: (line: LogLine) => boolean) =>
    new Promise<LogLine>((resolve, reject) => {
      const seen = lines.find(test);
      if (seen) return resolve(seen);
      waiters.push({ test, resolve });
      void exited.then(([code]) => reject(new Error(`the server exited with ${code}: ${stderr}`)));
    });
  const listening = await logged((line) => String(line.msg).startsWith("tenancy listening on "));
  const address = String(listening.address);
  return {
    child,
    address,
    port: Number(address.split(":").pop()),
    lines,
    logged,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null) child.kill(signal);
      const [code] = await exited;
      return code as number | null;
    },
  };
}
