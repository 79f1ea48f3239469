/**
 * What the console's end-to-end tests share: a build of the console from
 * the current sources, Debian's Chromium driven by playwright-core,
 * screenshots kept as test artifacts (test-results/console/, not
 * committed), and axe-core injected into the page.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";
/** Locally the files are skipped without Chromium; CI (CI=true) installs it and requires it. */
export const skipWithoutChromium = !existsSync(CHROMIUM) && !process.env.CI;
export const skipReason = skipWithoutChromium ? ` (skipped: ${CHROMIUM} not found; apt-get install -y chromium, or set CI=true to require it)` : "";

const root = fileURLToPath(new URL("../..", import.meta.url));
export const ARTIFACTS = path.join(root, "test-results", "console");

/** Builds the console from the current sources into a fresh directory (what `npm run build:console` does). */
export async function buildConsole(): Promise<string> {
  const outDir = await mkdtemp(path.join(os.tmpdir(), "tenancy-console-"));
  const tsx = path.join(root, "node_modules", "tsx", "dist", "cli.mjs");
  await promisify(execFile)(process.execPath, [tsx, path.join(root, "console", "build.ts"), "--out", outDir, "--quiet"], { cwd: root });
  return outDir;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

export interface OpenedPage {
  page: Page;
  context: BrowserContext;
  /** Uncaught exceptions of the page: a test fails on any. */
  pageErrors: string[];
}

export async function openPage(browser: Browser, url: string, options: { width?: number; height?: number } = {}): Promise<OpenedPage> {
  const context = await browser.newContext({
    viewport: { width: options.width ?? 1280, height: options.height ?? 900 },
    locale: "en-US",
    timezoneId: "UTC",
  });
  const page = await context.newPage();
  // Generous: CI shares two cores between Chromium, the service, PostgreSQL and other test files.
  page.setDefaultTimeout(30_000);
  const pageErrors: string[] = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  await page.goto(url);
  return { page, context, pageErrors };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * With UPDATE_DOCS_SCREENSHOTS=1, copies a screenshot to docs/ (the README
 * shows it); otherwise the committed one is left alone, so test runs do not
 * change the work tree.
 */
export async function publishScreenshot(file: string, docsName: string): Promise<void> {
  if (process.env.UPDATE_DOCS_SCREENSHOTS !== "1") return;
  await mkdir(path.join(root, "docs"), { recursive: true });
  await copyFile(file, path.join(root, "docs", docsName));
}

let axeSource: string | undefined;

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[]; failureSummary?: string }[];
}

/** Runs axe-core (WCAG 2.1 A and AA rules) on the page as it is; returns the serious and critical violations. */
export async function seriousAccessibilityViolations(page: Page): Promise<AxeViolation[]> {
  axeSource ??= await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
  // Injected through the DevTools protocol, so the console's CSP (script-src 'self') does not stop it.
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(context: unknown, options: unknown): Promise<{ violations: AxeViolation[]; passes: unknown[] }> } }).axe;
    const result = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
    // A run that checked nothing would pass anything.
    if (result.passes.length === 0) throw new Error("axe-core checked no rule on this page");
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Pastes a bearer token on the sign-in page and waits until signed in. */
export async function signInWithToken(page: Page, token: string): Promise<void> {
  await page.getByLabel("Bearer token", { exact: true }).fill(token);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** The text of the params editor. */
export function paramsEditor(page: Page) {
  return page.getByLabel("Params (JSON)", { exact: true });
}
