import { spawn } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const logger = path.resolve(import.meta.dirname, "../../src/logger.ts");

/** Runs `script` (with createLogger in scope) in a process of its own; resolves with each stdout line as it arrives, and the process. */
function run(script: string) {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", `import { createLogger } from ${JSON.stringify(logger)};\n${script}`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  let rest = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  return { child, lines, exited };
}

async function until(condition: () => boolean, timeoutMs: number) {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe("the stdout logger", () => {
  it("writes a lone line while the process keeps running (it does not wait for a full chunk)", async () => {
    const { child, lines } = run(`createLogger("info").info({ n: 1 }, "alone"); setTimeout(() => {}, 30_000);`);
    try {
      expect(await until(() => lines.length > 0, 10_000)).toBe(true);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: 30, n: 1, msg: "alone", service: "tenancy" });
    } finally {
      child.kill();
    }
  });

  it("loses no line of a burst, and flushes the rest when the process exits", async () => {
    const { lines, exited } = run(`const log = createLogger("info"); for (let i = 0; i < 500; i++) log.info({ i }, "burst"); process.exit(0);`);
    expect(await exited).toBe(0);
    expect(lines.map((l) => JSON.parse(l).i)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });
});
