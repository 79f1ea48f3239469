import { rm } from "node:fs/promises";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Tenant } from "../../gen/tenancy/v1/tenant_pb.js";
import type { TenancyClients } from "../../src/client.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { clientsWithToken, hsToken, TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET } from "../support/tokens.js";
import { buildConsole, launchBrowser, openPage, paramsEditor, screenshot, seriousAccessibilityViolations, signInWithToken, skipReason, skipWithoutChromium, type OpenedPage } from "./harness.js";

/**
 * What the console offers depends on who is signed in: a tenant
 * administrator sees their tenants and may change params and members, a
 * member sees read-only pages, and what the service refuses anyway
 * (PERMISSION_DENIED) is still explained. Under AUTH_MODE=none it opens
 * without signing in.
 */
describe.skipIf(skipWithoutChromium)(`who may do what in the console${skipReason}`, { timeout: 120_000 }, () => {
  let server: TestServer;
  let open: TestServer;
  let browser: Browser;
  let consoleDir: string;
  let api: TenancyClients;
  let ours: Tenant;
  let theirs: Tenant;
  const tenantAdmin = crypto.randomUUID();
  const otherAdmin = crypto.randomUUID();
  const member = crypto.randomUUID();
  let opened: OpenedPage | undefined;

  beforeAll(async () => {
    consoleDir = await buildConsole();
    server = await startTestServer({
      auth: { mode: "jwt", keys: { kind: "secret", secret: TEST_SECRET }, issuer: TEST_ISSUER, audience: TEST_AUDIENCE },
      console: { dir: consoleDir },
    });
    open = await startTestServer({ console: { dir: consoleDir } });
    browser = await launchBrowser();
    api = clientsWithToken(server.baseUrl, await hsToken({ admin: true, expiresIn: 3600 }));
    ours = await api.tenants.createTenant({ tenant: { name: "Ours", domain: "ours.access.example", params: { plan: "pro" } } });
    theirs = await api.tenants.createTenant({ tenant: { name: "Theirs", domain: "theirs.access.example" } });
    for (const [userId, roles] of [[tenantAdmin, ["admin"]], [otherAdmin, ["admin"]], [member, []]] as const) {
      await api.memberships.createMembership({ membership: { tenantId: ours.id, userId, roles: [...roles] } });
    }
    await api.memberships.createMembership({ membership: { tenantId: theirs.id, userId: otherAdmin, roles: ["admin"] } });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await open?.close();
    if (consoleDir) await rm(consoleDir, { recursive: true, force: true });
  });

  afterEach(async () => {
    const errors = opened?.pageErrors ?? [];
    await opened?.context.close();
    opened = undefined;
    expect(errors, "uncaught errors in the page").toEqual([]);
  });

  async function signedIn(sub: string, path = "/console/", expiresIn = 3600): Promise<Page> {
    opened = await openPage(browser, `${server.baseUrl}${path}`);
    await signInWithToken(opened.page, await hsToken({ sub, expiresIn }));
    return opened.page;
  }

  it("shows a tenant administrator only their tenants, and offers only params and members", async () => {
    const page = await signedIn(tenantAdmin);
    await page.getByRole("status").filter({ hasText: "1 tenant" }).waitFor();
    expect(await page.locator("tbody tr").allTextContents()).toEqual([expect.stringContaining("Ours")]);
    expect(await page.getByRole("link", { name: "New tenant" }).count()).toBe(0);
    await screenshot(page, "20-tenant-admin-list");

    await page.getByRole("link", { name: "Ours" }).click();
    await page.getByRole("heading", { level: 1, name: "Ours" }).waitFor();
    const editor = paramsEditor(page);
    await page.waitForFunction(() => (document.querySelector("textarea") as HTMLTextAreaElement | null)?.value.includes("pro"));
    for (const name of ["Suspend", "Delete…", "Restore…", "Purge…"]) expect(await page.getByRole("button", { name }).count()).toBe(0);
    expect(await page.getByRole("textbox", { name: "Name", exact: true }).count()).toBe(0);
    expect(await page.getByRole("textbox", { name: "Domain", exact: true }).count()).toBe(0);
    expect(await editor.getAttribute("readonly")).toBeNull();
    await editor.fill(JSON.stringify({ plan: "enterprise" }, null, 2));
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
    expect((await api.tenants.getTenant({ id: ours.id })).params).toEqual({ plan: "enterprise" });
    await screenshot(page, "20-tenant-admin-settings");

    await page.getByRole("link", { name: "Members" }).click();
    await page.getByRole("button", { name: "Add member" }).waitFor();
    await page.getByText("3 members", { exact: true }).waitFor();

    // What is not theirs is refused by the service, and the page says so.
    await page.goto(`${server.baseUrl}/console/tenants/${theirs.id}`);
    await page.getByRole("alert").filter({ hasText: "You can open only the tenants you are a member of." }).waitFor();
    await page.goto(`${server.baseUrl}/console/tenants/new`);
    await page.getByRole("heading", { level: 1, name: "Not allowed" }).waitFor();
  });

  it("shows a member read-only pages and only their own membership", async () => {
    const page = await signedIn(member, `/console/tenants/${ours.id}`);
    await page.getByText("You are a member of this tenant: you can see it, not change it.").waitFor();
    expect(await paramsEditor(page).getAttribute("readonly")).not.toBeNull();
    expect(await page.getByRole("button", { name: "Save changes" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Suspend" }).count()).toBe(0);
    await screenshot(page, "21-member-settings");

    await page.getByRole("link", { name: "Members" }).click();
    await page.getByRole("row").filter({ hasText: `${member} (you)` }).waitFor();
    expect(await page.locator("tbody tr").count()).toBe(1);
    expect(await page.getByRole("button", { name: "Add member" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: /Change roles|Remove/ }).count()).toBe(0);
    expect(await seriousAccessibilityViolations(page)).toEqual([]);
    await screenshot(page, "21-member-members");
  });

  it("explains a PERMISSION_DENIED when the person's rights were taken away while the page was open", async () => {
    const demoted = crypto.randomUUID();
    const membership = await api.memberships.createMembership({ membership: { tenantId: ours.id, userId: demoted, roles: ["admin"] } });
    const page = await signedIn(demoted, `/console/tenants/${ours.id}`);
    // Without the live feed the page keeps believing it may edit, as a page opened before the change would.
    await page.route("**/tenancy.v1.EventService/WatchEvents", (route) => route.abort());
    await page.reload();
    const editor = paramsEditor(page);
    await page.getByRole("button", { name: "Save changes" }).waitFor();
    await editor.fill(JSON.stringify({ plan: "sneaky" }, null, 2));

    await api.memberships.updateMembership({ membership: { id: membership.id, roles: [] }, updateMask: { paths: ["roles"] } });

    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("alert").filter({ hasText: "You are not allowed to do this." }).waitFor();
    expect((await api.tenants.getTenant({ id: ours.id })).params).not.toEqual({ plan: "sneaky" });
    await screenshot(page, "22-permission-denied");
  });

  it("returns to the sign-in page when the token expires", async () => {
    const page = await signedIn(member, "/console/", 5);
    await page.getByRole("heading", { level: 1, name: "Tenants" }).waitFor();
    await page.getByRole("status").filter({ hasText: "Your sign-in expired: sign in again." }).waitFor({ timeout: 20_000 });
    expect(await page.evaluate(() => sessionStorage.getItem("tenancy.console.token"))).toBeNull();
  });

  it("opens without signing in under AUTH_MODE=none", async () => {
    opened = await openPage(browser, `${open.baseUrl}/console/`);
    const { page } = opened;
    await page.getByRole("heading", { level: 1, name: "Tenants" }).waitFor();
    await page.getByText("No sign-in (AUTH_MODE=none)").waitFor();
    expect(await page.getByRole("button", { name: "Sign out" }).count()).toBe(0);
    expect(await page.getByRole("link", { name: "New tenant" }).count()).toBe(1);
    await screenshot(page, "23-auth-none");
  });
});
