import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * .ci/buf-breaking, as CI runs it, on a repository of its own made from this
 * one's proto/ and buf.yaml: compatible changes pass, breaking ones fail and
 * name the rule, on a branch (against the merge base with main) and on main
 * itself (against the commit before, as in CI's clean clone of main).
 */
const ROOT = new URL("../..", import.meta.url).pathname;
const TENANT_PROTO = "proto/tenancy/v1/tenant.proto";
let repo: string;
let original: string;

/** git without the variables a surrounding git (a hook, a worktree) may have set. */
function env(): Record<string, string | undefined> {
  const clean: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(clean)) if (name.startsWith("GIT_")) delete clean[name];
  return { ...clean, GIT_AUTHOR_NAME: "test", GIT_AUTHOR_EMAIL: "test@example.com", GIT_COMMITTER_NAME: "test", GIT_COMMITTER_EMAIL: "test@example.com" };
}

async function git(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)("git", args, { cwd: repo, env: env() });
  return stdout.trim();
}

async function check(): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(path.join(repo, ".ci", "buf-breaking"), [], {
      cwd: repo,
      env: { ...env(), BUF_CACHE_DIR: path.join(repo, ".buf-cache") },
      timeout: 60_000,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

/** tenant.proto with `edit` applied; fails the test when the text to replace is not there. */
async function editTenantProto(find: string, replace: string): Promise<void> {
  const text = await readFile(path.join(repo, TENANT_PROTO), "utf8");
  expect(text).toContain(find);
  await writeFile(path.join(repo, TENANT_PROTO), text.replace(find, replace));
}

beforeAll(async () => {
  repo = await mkdtemp(path.join(os.tmpdir(), "tenancy-buf-breaking-"));
  await cp(path.join(ROOT, "proto"), path.join(repo, "proto"), { recursive: true });
  await cp(path.join(ROOT, "buf.yaml"), path.join(repo, "buf.yaml"));
  await cp(path.join(ROOT, ".ci", "buf-breaking"), path.join(repo, ".ci", "buf-breaking"));
  await symlink(path.join(ROOT, "node_modules"), path.join(repo, "node_modules"));
  await writeFile(path.join(repo, ".gitignore"), "node_modules\n.buf-cache\n");
  await git("init", "-q", "-b", "main");
  await git("add", "-A");
  await git("commit", "-q", "-m", "the contract as it is");
  original = await readFile(path.join(repo, TENANT_PROTO), "utf8");
}, 60_000);

afterAll(async () => {
  if (repo) await rm(repo, { recursive: true, force: true });
});

describe(".ci/buf-breaking", () => {
  it("passes new fields and a new RPC on a branch", async () => {
    await git("checkout", "-q", "-b", "compatible", "main");
    await editTenantProto("message Tenant {\n", "message Tenant {\n  // Added by a later change.\n  string added_later = 900;\n");
    await editTenantProto(
      "service TenantService {\n",
      "service TenantService {\n  // Added by a later change.\n  rpc PingTenants(google.protobuf.Empty) returns (google.protobuf.Empty);\n",
    );
    await git("commit", "-q", "-am", "a new field and a new RPC");
    const { code, output } = await check();
    expect(output).toMatch(/buf breaking: proto\/ against [0-9a-f]+ \(the contract as it is\)/);
    expect(output).toContain("buf breaking: no breaking change");
    expect(code).toBe(0);
  }, 60_000);

  it("fails a renamed field not yet committed, naming the rules it breaks", async () => {
    await git("checkout", "-q", "-b", "rename", "main");
    await editTenantProto("  string domain = 3;\n", "  string host = 3;\n");
    try {
      const { code, output } = await check();
      expect(output).toMatch(/buf breaking: proto\/ against [0-9a-f]+ \(the contract as it is\)/);
      expect(code).not.toBe(0);
      expect(output).toMatch(/tenant\.proto\(\d+,\d+\) : error FIELD_SAME_NAME : Field "3" on message "Tenant" changed name from "domain" to "host"\./);
      expect(output).toMatch(/error FIELD_SAME_JSON_NAME : .*changed option "json_name" from "domain" to "host"/);
      expect(output).not.toContain("no breaking change");
    } finally {
      await git("checkout", "-q", "--", TENANT_PROTO);
    }
  }, 60_000);

  it("fails a deleted field committed on main, as CI's clean clone of main sees it (against HEAD~1)", async () => {
    await git("checkout", "-q", "main");
    expect(await readFile(path.join(repo, TENANT_PROTO), "utf8")).toBe(original);
    await editTenantProto("  string domain = 3;\n", "");
    await git("commit", "-q", "-am", "drop Tenant.domain");
    const { code, output } = await check();
    expect(output).toMatch(/buf breaking: proto\/ against [0-9a-f]+ \(the contract as it is\)/);
    expect(code).not.toBe(0);
    expect(output).toMatch(/error FIELD_NO_DELETE : Previously present field "3" with name "domain" on message "Tenant" was deleted\./);
  }, 60_000);
});
