import { spawn, type ChildProcess } from "node:child_process";

/** The real service as a child process: its JSON log lines, its stderr, and when it listens or exits. */
export interface ServiceProcess {
  child: ChildProcess;
  /** Parsed JSON lines of stdout. */
  lines: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with host:port once the service logs that it listens; rejects if it exits first. */
  listening: Promise<string>;
  /** Once the process has exited and its output is closed (by every process it started that shares it, as npm's child does). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Ctrl-C in a terminal: SIGINT to the process and everything it started (its process group). */
  interrupt(): void;
  /** Resolves with the first log line (already seen or to come) that `accept` accepts; rejects if the process exits first. */
  line(accept: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * Starts `command` (by default the service from its sources, as `npm run dev`
 * does) in `cwd` (by default this checkout). `env` replaces the environment
 * entirely; DATABASE_URL, PORT and the like are the caller's to set.
 */
export function startServiceProcess(options: {
  env: Record<string, string | undefined>;
  cwd?: string;
  command?: [string, ...string[]];
}): ServiceProcess {
  const [command, ...args] = options.command ?? [process.execPath, "--import", "tsx", "src/main.ts"];
  // A process group of its own, so that interrupt() reaches what it starts, as a terminal's Ctrl-C does.
  const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  const waiters: Array<{ accept: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }> = [];
  const listening = new Promise<string>((resolve, reject) => {
    let buffer = "";
    child.stdout!.on("data", (chunk) => {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const text = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (!text.startsWith("{")) continue; // npm's own lines, tsc's
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        for (const waiter of waiters.filter((w) => w.accept(line))) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
        if (typeof line.address === "string" && String(line.msg).includes("listening")) resolve(line.address);
      }
    });
    void exited.then(({ code, signal }) => reject(new Error(`exited (${signal ?? code}) before listening: ${stderr}`)));
  });
  listening.catch(() => {}); // a test that expects a failed start awaits `exited` instead
  const interrupt = () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, "SIGINT");
  };
  const line = (accept: (line: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = lines.find(accept);
      if (seen) return resolve(seen);
      waiters.push({ accept, resolve });
      void exited.then(({ code, signal }) => reject(new Error(`exited (${signal ?? code}) before the line awaited: ${stderr}`)));
    });
  return { child, lines, stderr: () => stderr, listening, exited, interrupt, line };
}

/** The environment of this test process without the variables that configure the service. */
export function serviceEnv(overrides: Record<string, string | undefined>): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(AUTH_|DATABASE_|DATA_DIR$|PORT$|HOST$|WORKERS$|LOG_LEVEL$|VITEST|TEST$|NODE_ENV$)/.test(name)) delete env[name];
  }
  return { ...env, LOG_LEVEL: "info", ...overrides };
}

/** Lines of stderr, as an operator sees them. */
export function stderrLines(service: ServiceProcess): string[] {
  return service
    .stderr()
    .split("\n")
    .filter((line) => line.trim() !== "");
}
