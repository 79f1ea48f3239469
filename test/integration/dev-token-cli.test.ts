import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { createTokenVerifier } from "../../src/auth/token-verifier.js";

/** `npm run token` as a user runs it. */
async function token(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn("npm", ["run", "--silent", "token", "--", ...args], {
    cwd: new URL("../..", import.meta.url).pathname,
    env: { ...process.env, AUTH_JWT_SECRET: undefined, AUTH_ISSUER: undefined, AUTH_AUDIENCE: undefined, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  return { code, stdout, stderr };
}

describe("npm run token", () => {
  it("--help (and -h) prints the usage and every option, and exits 0", async () => {
    for (const flag of ["--help", "-h"]) {
      const { code, stdout, stderr } = await token([flag]);
      expect(code).toBe(0);
      expect(stderr).toBe("");
      expect(stdout).toMatch(/^Usage: npm run --silent token -- \[--admin\] \[--sub <uuid>\] \[--ttl <seconds>\]\n/);
      for (const option of ["--admin", "--sub <uuid>", "--ttl <seconds>", "-h, --help", "AUTH_JWT_SECRET", "AUTH_ISSUER", "AUTH_AUDIENCE"]) {
        expect(stdout).toContain(option);
      }
    }
  });

  it("says in one line what is wrong with the command line, pointing at --help, and exits 2", async () => {
    const unknown = await token(["--bogus"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe("Unknown option '--bogus' (npm run token -- --help shows the options)\n");
    const badSub = await token(["--sub", "alice"], { AUTH_JWT_SECRET: "s".repeat(32) });
    expect(badSub.code).toBe(2);
    expect(badSub.stderr).toBe(`--sub must be a UUID, got "alice" (npm run token -- --help shows the options)\n`);
  });

  it("prints a token the server accepts", async () => {
    const secret = "s".repeat(32);
    const sub = crypto.randomUUID();
    const { code, stdout } = await token(["--sub", sub, "--admin"], { AUTH_JWT_SECRET: secret });
    expect(code).toBe(0);
    const verifier = createTokenVerifier({ mode: "jwt", keys: { kind: "secret", secret } });
    expect(await verifier.verify(stdout.trim())).toEqual({ userId: sub, platformAdmin: true });
  });
});
