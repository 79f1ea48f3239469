/**
 * The script of the browser end-to-end test (test/integration/browser.test.ts):
 * bundled by esbuild at test time and run in a real Chromium, it talks to the
 * service with Connect-Web, as a web app would. It only uses `fetch` and
 * `globalThis`, so it needs no DOM types.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { TenantService } from "../../gen/tenancy/v1/tenant_pb.js";
import { EventService } from "../../gen/tenancy/v1/event_pb.js";

export type BrowserProtocol = "connect" | "grpc-web";

export interface TenantSummary {
  id: string;
  name: string;
  domain: string;
  createTime: string | null;
}

export type ScenarioResult =
  | {
      ok: true;
      protocol: BrowserProtocol;
      created: TenantSummary;
      got: TenantSummary;
      listed: { ids: string[]; names: string[]; totalSize: number };
    }
  | { ok: false; protocol: BrowserProtocol; code: string; message: string };

export type RunScenario = (baseUrl: string, protocol: BrowserProtocol, tag?: string) => Promise<ScenarioResult>;

function summary(tenant: { id: string; name: string; domain: string; createTime?: { seconds: bigint; nanos: number } | undefined }): TenantSummary {
  const t = tenant.createTime;
  return {
    id: tenant.id,
    name: tenant.name,
    domain: tenant.domain,
    createTime: t ? new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toISOString() : null,
  };
}

/**
 * Creates a tenant named after `tag`, reads it back with GetTenant and lists
 * tenants filtered on its domain. Never throws: failures come back as the
 * Connect code's name and the message.
 */
const runScenario: RunScenario = async (baseUrl, protocol, tag) => {
  const t = tag ?? Math.random().toString(36).slice(2, 10);
  const transport =
    protocol === "connect"
      ? createConnectTransport({ baseUrl, useBinaryFormat: false })
      : createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
  const tenants = createClient(TenantService, transport);
  try {
    const domain = `${t}.browser.example`;
    const created = await tenants.createTenant({
      tenant: { name: `Browser ${protocol} ${t}`, domain, params: { via: protocol } },
    });
    const got = await tenants.getTenant({ id: created.id });
    const listed = await tenants.listTenants({ filter: `domain = "${domain}"` });
    return {
      ok: true,
      protocol,
      created: summary(created),
      got: summary(got),
      listed: {
        ids: listed.tenants.map((x) => x.id),
        names: listed.tenants.map((x) => x.name),
        totalSize: listed.totalSize,
      },
    };
  } catch (e) {
    const error = ConnectError.from(e);
    return { ok: false, protocol, code: Code[error.code], message: error.message };
  }
};

(globalThis as unknown as { runScenario: RunScenario }).runScenario = runScenario;

export type WatchInPage = (baseUrl: string, protocol: BrowserProtocol, tenantId: string) => void;

/**
 * Watches one tenant's events from now on and shows each as a line of the
 * page's `#events` list; `#events[data-ready]` once the stream is open.
 */
const watchInPage: WatchInPage = (baseUrl, protocol, tenantId) => {
  const transport =
    protocol === "connect"
      ? createConnectTransport({ baseUrl, useBinaryFormat: false })
      : createGrpcWebTransport({ baseUrl, useBinaryFormat: true });
  const events = createClient(EventService, transport);
  // Only what every DOM has; the script is compiled without DOM types.
  const document = (globalThis as unknown as { document: DomDocument }).document;
  const list = document.createElement("ol");
  list.id = "events";
  document.body.appendChild(list);
  void (async () => {
    try {
      for await (const message of events.watchEvents({ startNow: true, tenantId })) {
        if (message.kind.case === "progress") list.setAttribute("data-ready", "true");
        if (message.kind.case === "event") {
          const item = document.createElement("li");
          item.textContent = `${message.kind.value.type} ${message.kind.value.changedFields?.paths.join(",") ?? ""}`;
          list.appendChild(item);
        }
      }
    } catch (e) {
      list.setAttribute("data-error", ConnectError.from(e).message);
    }
  })();
};

interface DomElement {
  id: string;
  textContent: string | null;
  setAttribute(name: string, value: string): void;
  appendChild(child: DomElement): void;
}
interface DomDocument {
  body: DomElement;
  createElement(tag: string): DomElement;
}

(globalThis as unknown as { watchInPage: WatchInPage }).watchInPage = watchInPage;
