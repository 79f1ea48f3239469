import { rm } from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Tenant_State } from "../../gen/tenancy/v1/tenant_pb.js";
import type { TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { clientsWithToken, hsToken, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET } from "../support/tokens.js";
import {
  buildConsole,
  launchBrowser,
  openPage,
  paramsEditor,
  publishScreenshot,
  screenshot,
  seriousAccessibilityViolations,
  signInWithToken,
  skipReason,
  skipWithoutChromium,
  type OpenedPage,
} from "./harness.js";

/**
 * The console end to end, as a platform administrator under AUTH_MODE=jwt:
 * a real Chromium on the console the service serves, a real service and
 * database behind it, and a second client (the "someone else") changing
 * things through the API.
 */
const ADMIN = "6d5f6c1e-1f7a-4a8e-9a52-1c9b8f0e2a11";

function tag() {
  return Math.random().toString(36).slice(2, 8);
}

describe.skipIf(skipWithoutChromium)(`the console, as a platform administrator${skipReason}`, { timeout: 120_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let consoleDir: string;
  let adminToken: string;
  let api: TenancyClients;
  let opened: OpenedPage | undefined;

  beforeAll(async () => {
    consoleDir = await buildConsole();
    server = await startTestServer({
      auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET }, issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
      console: { dir: consoleDir },
    });
    browser = await launchBrowser();
    adminToken = await hsToken({ admin: true, sub: ADMIN, expiresIn: 3600 });
    api = clientsWithToken(server.baseUrl, await hsToken({ admin: true, expiresIn: 3600 }));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (consoleDir) await rm(consoleDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    const errors = opened?.pageErrors ?? [];
    await opened?.context.close();
    opened = undefined;
    expect(errors, "uncaught errors in the page").toEqual([]);
  });

  /** Opens a console page signed in as the platform administrator. */
  async function open(path = "/console/", width?: number): Promise<Page> {
    opened = await openPage(browser, `${server.baseUrl}${path}`, { width });
    await signInWithToken(opened.page, adminToken);
    return opened.page;
  }

  async function tenantPage(tenantId: string, tab = ""): Promise<Page> {
    const page = await open(`/console/tenants/${tenantId}${tab}`);
    await page.getByRole("navigation", { name: "Tenant" }).waitFor();
    return page;
  }

  it("signs in with a pasted token, and refuses tokens that cannot work with a reason", async () => {
    opened = await openPage(browser, `${server.baseUrl}/console/`);
    const { page } = opened;
    await page.getByRole("heading", { level: 1, name: "Sign in to the tenancy console" }).waitFor();

    await page.getByLabel("Bearer token", { exact: true }).fill("not a token");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByRole("alert").filter({ hasText: "This is not a JSON Web Token" }).waitFor();

    // Well formed, but signed with another secret: the service refuses it and the console says so.
    await page.getByLabel("Bearer token", { exact: true }).fill(await hsToken({ admin: true, secret: "another-secret-0123456789-0123456789-abc" }));
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "The service did not accept your sign-in" }).waitFor();

    await signInWithToken(page, adminToken);
    await page.getByRole("heading", { level: 1, name: "Tenants" }).waitFor();
    await page.getByText(`${ADMIN} · platform administrator`).waitFor();
    // The token is in this tab's sessionStorage, never in the address.
    expect(page.url()).not.toContain("ey");
    expect(await page.evaluate(() => sessionStorage.getItem("tenancy.console.token"))).toBe(adminToken);
    await screenshot(page, "01-signed-in");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("status").filter({ hasText: "You signed out." }).waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem("tenancy.console.token"))).toBeNull();
  });

  it("filters with a typed filter and by example, reports a bad filter on the field, sorts, pages and shows deleted tenants", async () => {
    const t = tag();
    for (let i = 0; i < 23; i++) {
      await api.tenants.createTenant({ tenant: { name: `Filter ${t} ${String(i).padStart(2, "0")}`, domain: `f${i}.${t}.example`, params: { plan: i % 2 ? "pro" : "free" } } });
    }
    const gone = await api.tenants.createTenant({ tenant: { name: `Filter ${t} gone`, domain: `gone.${t}.example` } });
    await api.tenants.deleteTenant({ id: gone.id });

    const page = await open();
    const filter = page.getByRole("searchbox", { name: "Filter" });
    await filter.fill(`domain:"${t}"`);
    await filter.press("Enter");
    await page.getByRole("status").filter({ hasText: "23 tenants, page 1" }).waitFor();
    expect(new URL(page.url()).searchParams.get("filter")).toBe(`domain:"${t}"`);
    expect(await page.locator("tbody tr").count()).toBe(20);

    await page.getByRole("button", { name: "Next page" }).click();
    await page.getByRole("status").filter({ hasText: "page 2" }).waitFor();
    expect(await page.locator("tbody tr").count()).toBe(3);

    await page.getByLabel("Sort", { exact: true }).selectOption({ label: "Name, Z to A" });
    await page.getByRole("status").filter({ hasText: "23 tenants, page 1" }).waitFor();
    await page.locator("tbody tr").first().getByRole("link", { name: `Filter ${t} 22` }).waitFor();

    // The deleted one shows up only when asked for.
    await filter.fill(`domain:"gone.${t}"`);
    await filter.press("Enter");
    await page.getByRole("status").filter({ hasText: "No tenant matches." }).waitFor();
    await page.getByLabel("Show deleted tenants", { exact: true }).check();
    await page.getByRole("row").filter({ hasText: `Filter ${t} gone` }).filter({ hasText: "Deleted" }).waitFor();

    await page.getByRole("button", { name: 'params.plan = "pro"' }).click();
    await page.waitForURL((url) => url.searchParams.get("filter") === 'params.plan = "pro"');
    expect(await filter.inputValue()).toBe('params.plan = "pro"');
    await page.getByRole("status").filter({ hasText: /\d+ tenants?/ }).waitFor();

    await filter.fill("name = ");
    await filter.press("Enter");
    const error = page.locator(".filter-field .field-error");
    await error.waitFor();
    expect(await filter.getAttribute("aria-invalid")).toBe("true");
    expect(await filter.getAttribute("aria-describedby")).toContain(await error.getAttribute("id"));
    await screenshot(page, "02-filter-error");
  });

  it("creates a tenant, with the service's error placed on the domain field first", async () => {
    const t = tag();
    const page = await open();
    await page.getByRole("link", { name: "New tenant" }).click();
    await page.getByRole("heading", { level: 1, name: "New tenant" }).waitFor();
    await page.getByLabel("Name", { exact: true }).fill(`Created ${t}`);
    await page.getByLabel("Domain", { exact: true }).fill("not a domain!");
    await paramsEditor(page).fill(JSON.stringify({ plan: "pro", seats: 12 }, null, 2));
    await page.getByRole("button", { name: "Create tenant" }).click();

    const domain = page.getByLabel("Domain", { exact: true });
    await page.waitForFunction(() => document.querySelector("input[aria-invalid=true]") !== null);
    expect(await domain.getAttribute("aria-invalid")).toBe("true");
    const describedBy = (await domain.getAttribute("aria-describedby"))!.split(" ");
    const domainError = page.locator(`[id="${describedBy[describedBy.length - 1]}"]`);
    expect(await domainError.textContent()).toMatch(/host name|domain|label/i);
    await screenshot(page, "03-create-domain-error");

    await domain.fill(`${t}.created.example`);
    await page.getByRole("button", { name: "Create tenant" }).click();
    await page.getByRole("heading", { level: 1, name: `Created ${t}` }).waitFor();
    const id = page.url().split("/tenants/")[1]!;
    const stored = await api.tenants.getTenant({ id });
    expect(stored).toMatchObject({ name: `Created ${t}`, domain: `${t}.created.example`, params: { plan: "pro", seats: 12 } });
    await screenshot(page, "03-created");
  });

  it("edits params, shows the service's validation error on the line of its field, then saves", async () => {
    // Fixed names: this page is the README's screenshot (each test file has its own database).
    const tenant = await api.tenants.createTenant({
      tenant: { name: "Acme Learning", domain: "learn.acme.example", params: { plan: "pro", seats: 250, theme: { color: "#0b57d0", logo: "https://acme.example/logo.svg" }, features: { sso: true, beta: false } } },
    });
    const page = await tenantPage(tenant.id);
    const editor = paramsEditor(page);
    await page.getByText("learn.acme.example").first().waitFor();
    const text = await editor.inputValue();
    expect(JSON.parse(text)).toEqual(tenant.params);

    // PostgreSQL's jsonb cannot hold U+0000, so the service refuses it, naming tenant.params.theme.color.
    await editor.fill(text.replace('"#0b57d0"', '"#0b57d0\\u0000"'));
    await page.getByRole("button", { name: "Save changes" }).click();
    const item = page.locator('.params-errors li[data-path="theme.color"]');
    await item.waitFor();
    const colorLine = (await editor.inputValue()).split("\n").findIndex((line) => line.includes('"color"')) + 1;
    expect(await item.textContent()).toContain(`Line ${colorLine}`);
    expect(await item.textContent()).toContain("U+0000");
    // The gutter marks that line, and the editor points screen readers at the message.
    expect(await page.locator(`.gutter [data-line="${colorLine}"]`).getAttribute("class")).toBe("error-line");
    expect(await editor.getAttribute("aria-invalid")).toBe("true");
    await screenshot(page, "04-params-error");

    // The message's button selects the key in the editor.
    await item.getByRole("button", { name: `Line ${colorLine}` }).click();
    expect(await editor.evaluate((el: HTMLTextAreaElement) => el.value.slice(el.selectionStart, el.selectionEnd))).toBe('"color"');

    await editor.fill(text.replace('"#0b57d0"', '"#1a7f37"'));
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    expect((await api.tenants.getTenant({ id: tenant.id })).params).toMatchObject({ theme: { color: "#1a7f37" } });

    const shot = await screenshot(page, "04-tenant-page");
    await publishScreenshot(shot, "console-tenant.png");
  });

  it("refuses to overwrite a change another client made meanwhile, and lets the person choose", async () => {
    const t = tag();
    const tenant = await api.tenants.createTenant({ tenant: { name: `Conflict ${t}`, domain: `${t}.conflict.example`, params: { plan: "free" } } });
    const page = await tenantPage(tenant.id);
    const editor = paramsEditor(page);
    await page.waitForFunction(() => (document.querySelector("textarea") as HTMLTextAreaElement | null)?.value.includes("free"));
    await editor.fill(JSON.stringify({ plan: "mine" }, null, 2));

    await api.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "theirs" } }, updateMask: { paths: ["params"] } });

    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("alert").filter({ hasText: `Not saved: someone else changed Conflict ${t} after you started editing.` }).waitFor();
    // Nothing was overwritten, and the edits are still in the editor.
    expect((await api.tenants.getTenant({ id: tenant.id })).params).toEqual({ plan: "theirs" });
    expect(JSON.parse(await editor.inputValue())).toEqual({ plan: "mine" });
    await screenshot(page, "05-etag-conflict");

    await page.getByRole("button", { name: "Load their version (discard my edits)" }).click();
    await page.waitForFunction(() => (document.querySelector("textarea") as HTMLTextAreaElement).value.includes("theirs"));

    // Again, and this time keep mine.
    await editor.fill(JSON.stringify({ plan: "mine" }, null, 2));
    await api.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "theirs again" } }, updateMask: { paths: ["params"] } });
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("button", { name: "Save mine over theirs" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    expect((await api.tenants.getTenant({ id: tenant.id })).params).toEqual({ plan: "mine" });
  });

  it("suspends and activates a tenant", async () => {
    const t = tag();
    const tenant = await api.tenants.createTenant({ tenant: { name: `Suspend ${t}`, domain: `${t}.suspend.example` } });
    const page = await tenantPage(tenant.id);
    await page.getByRole("button", { name: "Suspend" }).click();
    await page.getByRole("status").filter({ hasText: `Suspend ${t} is suspended.` }).waitFor();
    await page.locator(".subtitle .badge-suspended").waitFor();
    expect((await api.tenants.getTenant({ id: tenant.id })).state).toBe(Tenant_State.SUSPENDED);
    await screenshot(page, "06-suspended");

    await page.getByRole("button", { name: "Activate" }).click();
    await page.locator(".subtitle .badge-active").waitFor();
    expect((await api.tenants.getTenant({ id: tenant.id })).state).toBe(Tenant_State.ACTIVE);
  });

  it("deletes (with its members), restores and purges a tenant, each confirmed in a dialog that names it", async () => {
    const t = tag();
    const name = `Lifecycle ${t}`;
    const tenant = await api.tenants.createTenant({ tenant: { name, domain: `${t}.lifecycle.example` } });
    await api.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: ["admin"] } });
    const page = await tenantPage(tenant.id);

    await page.getByRole("button", { name: "Delete…" }).click();
    const dialog = page.getByRole("dialog", { name: `Delete ${name}?` });
    await dialog.waitFor();
    await dialog.getByRole("button", { name: `Delete ${name}` }).click();
    await dialog.getByRole("alert").filter({ hasText: "The tenant still has members" }).waitFor();
    await dialog.getByText("It still has 1 members.").waitFor();
    await screenshot(page, "07-delete-has-members");
    await dialog.getByLabel("Also remove its memberships", { exact: true }).check();
    await dialog.getByRole("button", { name: `Delete ${name}` }).click();
    await page.getByRole("status").filter({ hasText: `${name} is deleted.` }).waitFor();
    expect((await api.tenants.getTenant({ id: tenant.id })).state).toBe(Tenant_State.DELETED);

    await page.getByRole("button", { name: "Restore…" }).click();
    const restore = page.getByRole("dialog", { name: `Restore ${name}?` });
    await restore.getByRole("button", { name: `Restore ${name}` }).click();
    await page.getByRole("status").filter({ hasText: `${name} is restored and active.` }).waitFor();
    expect((await api.tenants.getTenant({ id: tenant.id })).state).toBe(Tenant_State.ACTIVE);

    await page.getByRole("button", { name: "Delete…" }).click();
    await page.getByRole("dialog", { name: `Delete ${name}?` }).getByRole("button", { name: `Delete ${name}` }).click();
    await page.getByRole("button", { name: "Purge…" }).click();
    const purge = page.getByRole("dialog", { name: `Purge ${name} for good?` });
    const confirm = purge.getByRole("button", { name: `Purge ${name}` });
    expect(await confirm.isDisabled()).toBe(true);
    await purge.getByLabel(`Type the tenant's name, ${name}, to confirm`, { exact: true }).fill(name);
    await screenshot(page, "07-purge-confirm");
    await confirm.click();
    await page.getByRole("heading", { level: 1, name: "Tenants" }).waitFor();
    const error = await api.tenants.getTenant({ id: tenant.id }).catch((e: unknown) => ConnectError.from(e));
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
  });

  it("adds a member, changes their roles and removes them", async () => {
    const t = tag();
    const tenant = await api.tenants.createTenant({ tenant: { name: `Members ${t}`, domain: `${t}.members.example` } });
    const first = crypto.randomUUID();
    const second = crypto.randomUUID();
    const page = await tenantPage(tenant.id, "/members");
    await page.getByRole("heading", { name: "Members", level: 2 }).waitFor();

    const add = async (userId: string, roles: string) => {
      await page.getByLabel("User id", { exact: true }).fill(userId);
      await page.getByLabel("Roles", { exact: true }).fill(roles);
      await page.getByRole("button", { name: "Add member" }).click();
      await page.getByRole("status").filter({ hasText: `${userId} was added.` }).waitFor();
    };
    await add(first, "admin");
    await add(second, "viewer");
    await page.getByRole("row").filter({ hasText: second }).filter({ hasText: "viewer" }).waitFor();

    // Adding someone twice is explained, next to the user id.
    await page.getByLabel("User id", { exact: true }).fill(second);
    await page.getByRole("button", { name: "Add member" }).click();
    await page.getByRole("alert").filter({ hasText: `${second} is already a member of Members ${t}.` }).waitFor();

    await page.getByRole("button", { name: `Change roles of ${second}` }).click();
    await page.getByLabel(`Roles of ${second}`, { exact: true }).fill("admin, billing");
    await page.getByRole("button", { name: "Save roles" }).click();
    await page.getByRole("row").filter({ hasText: second }).filter({ hasText: "admin, billing" }).waitFor();
    await screenshot(page, "08-members");

    await page.getByRole("button", { name: `Remove ${second}` }).click();
    const dialog = page.getByRole("dialog", { name: `Remove ${second} from Members ${t}?` });
    await dialog.getByRole("button", { name: "Remove member" }).click();
    await page.getByRole("status").filter({ hasText: `${second} was removed from Members ${t}.` }).waitFor();
    const { memberships } = await api.memberships.listMemberships({ tenantId: tenant.id });
    expect(memberships.map((m) => [m.userId, m.roles])).toEqual([[first, ["admin"]]]);
  });

  it("explains the last-admin refusal in a sentence, for a role change and for a removal", async () => {
    const t = tag();
    const tenant = await api.tenants.createTenant({ tenant: { name: `Last ${t}`, domain: `${t}.last.example` } });
    const only = crypto.randomUUID();
    await api.memberships.createMembership({ membership: { tenantId: tenant.id, userId: only, roles: ["admin"] } });
    const page = await tenantPage(tenant.id, "/members");

    await page.getByRole("button", { name: `Change roles of ${only}` }).click();
    await page.getByLabel(`Roles of ${only}`, { exact: true }).fill("viewer");
    await page.getByRole("button", { name: "Save roles" }).click();
    const sentence = `${only} is the last administrator of Last ${t}, and a tenant with administrators always keeps one. Make another member an administrator first.`;
    await page.getByRole("alert").filter({ hasText: sentence }).waitFor();
    expect(await page.getByText("LAST_ADMIN").count()).toBe(0);
    await screenshot(page, "09-last-admin");
    await page.getByRole("button", { name: "Cancel" }).click();

    await page.getByRole("button", { name: `Remove ${only}` }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Remove member" }).click();
    await page.getByRole("alert").filter({ hasText: sentence }).waitFor();
    const { memberships } = await api.memberships.listMemberships({ tenantId: tenant.id });
    expect(memberships.map((m) => m.roles)).toEqual([["admin"]]);
  });

  it("shows the tenant's audit log: who changed what, when, and which fields", async () => {
    const t = tag();
    const someoneElse = crypto.randomUUID();
    const other = clientsWithToken(server.baseUrl, await hsToken({ admin: true, sub: someoneElse, expiresIn: 600 }));
    const tenant = await other.tenants.createTenant({ tenant: { name: `History ${t}`, domain: `${t}.history.example`, params: { plan: "free" } } });
    await other.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "pro" } }, updateMask: { paths: ["params.plan"] } });
    const newcomer = crypto.randomUUID();

    const page = await tenantPage(tenant.id, "/members");
    await page.getByLabel("User id", { exact: true }).fill(newcomer);
    await page.getByLabel("Roles", { exact: true }).fill("admin");
    await page.getByRole("button", { name: "Add member" }).click();
    await page.getByRole("status").filter({ hasText: `${newcomer} was added.` }).waitFor();

    await page.getByRole("link", { name: "History" }).click();
    const rows = page.locator("table.history tbody tr");
    await rows.nth(2).waitFor();
    const cells = async (i: number) => (await rows.nth(i).locator("th, td").allTextContents()).slice(1);
    expect(await cells(0)).toEqual(["you", `Member added: ${newcomer} (roles: admin)`, "—"]);
    expect(await cells(1)).toEqual([someoneElse, "Tenant changed", "params.plan"]);
    expect(await cells(2)).toEqual([someoneElse, "Tenant created", "—"]);
    expect(await rows.count()).toBe(3);
    // When: the event's commit time, shown in the page's time zone (UTC here).
    const when = await rows.nth(2).locator("time").getAttribute("datetime");
    expect(Math.abs(Date.parse(when!) - Date.now())).toBeLessThan(10 * 60_000);
    await screenshot(page, "11-history");
  });

  it("follows changes made by another client without a reload (WatchEvents)", async () => {
    const t = tag();
    const tenant = await api.tenants.createTenant({ tenant: { name: `Live ${t}`, domain: `${t}.live.example`, params: { plan: "free" } } });
    const page = await tenantPage(tenant.id);
    await page.locator(".feed-live").waitFor();
    await page.evaluate(() => ((window as unknown as { sameDocument: boolean }).sameDocument = true));

    await api.tenants.updateTenant({ tenant: { id: tenant.id, params: { plan: "enterprise" } }, updateMask: { paths: ["params"] } });
    await page.waitForFunction(() => (document.querySelector("textarea") as HTMLTextAreaElement).value.includes("enterprise"));

    await page.getByRole("link", { name: "History" }).click();
    await page.locator("table.history tbody tr").filter({ hasText: "Tenant changed" }).waitFor();
    await api.tenants.updateTenant({ tenant: { id: tenant.id, state: Tenant_State.SUSPENDED }, updateMask: { paths: ["state"] } });
    await page.locator("table.history tbody tr").first().filter({ hasText: "Tenant suspended" }).waitFor();
    await page.locator(".subtitle .badge-suspended").waitFor();
    expect(await page.evaluate(() => (window as unknown as { sameDocument?: boolean }).sameDocument)).toBe(true);
    await screenshot(page, "12-live-history");
  });

  it("is usable with the keyboard alone, with a visible focus", async () => {
    const page = await open();
    // The skip link comes first, then the header; each focused control shows an outline.
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content");
    const outlines: string[] = [];
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press("Tab");
      outlines.push(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle));
    }
    expect(outlines.every((style) => style !== "none")).toBe(true);
    // Filter from the keyboard: focus the field, type, Enter.
    await page.getByRole("searchbox", { name: "Filter" }).focus();
    await page.keyboard.type('name:"zzz-nothing"');
    await page.keyboard.press("Enter");
    await page.getByRole("status").filter({ hasText: "No tenant matches." }).waitFor();
  });

  it("fits a 375 px wide screen without sideways scrolling", async () => {
    const t = tag();
    const tenant = await api.tenants.createTenant({ tenant: { name: `Narrow ${t}`, domain: `${t}.narrow.example`, params: { plan: "pro" } } });
    const page = await open(`/console/tenants/${tenant.id}`, 375);
    await page.getByRole("heading", { level: 1, name: `Narrow ${t}` }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await screenshot(page, "10-tenant-375px");
    await page.getByRole("link", { name: "Members" }).click();
    await page.getByRole("heading", { name: "Members", level: 2 }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.getByRole("link", { name: "Tenants" }).first().click();
    await page.getByRole("heading", { level: 1, name: "Tenants" }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await screenshot(page, "10-tenants-375px");
  });

  it("has no serious or critical accessibility violations on its main pages (axe-core)", async () => {
    const t = tag();
    const tenant = await api.tenants.createTenant({ tenant: { name: `Axe ${t}`, domain: `${t}.axe.example`, params: { plan: "pro" } } });
    await api.memberships.createMembership({ membership: { tenantId: tenant.id, userId: crypto.randomUUID(), roles: ["admin"] } });
    opened = await openPage(browser, `${server.baseUrl}/console/`);
    const { page } = opened;
    const results: Record<string, unknown[]> = {};
    await page.getByRole("heading", { level: 1, name: "Sign in to the tenancy console" }).waitFor();
    results["sign-in"] = await seriousAccessibilityViolations(page);
    await signInWithToken(page, adminToken);
    await page.getByRole("status").filter({ hasText: /^\d+ tenants?/ }).waitFor();
    results.tenants = await seriousAccessibilityViolations(page);

    await page.getByRole("link", { name: "New tenant" }).click();
    await page.getByRole("heading", { level: 1, name: "New tenant" }).waitFor();
    results["new tenant"] = await seriousAccessibilityViolations(page);

    await page.goto(`${server.baseUrl}/console/tenants/${tenant.id}`);
    await page.getByRole("button", { name: "Save changes" }).waitFor();
    results.settings = await seriousAccessibilityViolations(page);
    await page.getByRole("link", { name: "Members" }).click();
    await page.getByRole("button", { name: "Add member" }).waitFor();
    results.members = await seriousAccessibilityViolations(page);
    await page.getByRole("button", { name: "Delete…" }).click();
    await page.getByRole("dialog").waitFor();
    results["delete dialog"] = await seriousAccessibilityViolations(page);
    await page.getByRole("dialog").getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("link", { name: "History" }).click();
    await page.getByRole("heading", { level: 2, name: "History" }).waitFor();
    results.history = await seriousAccessibilityViolations(page);

    expect(results).toEqual({ "sign-in": [], tenants: [], "new tenant": [], settings: [], members: [], "delete dialog": [], history: [] });
  });
});
