import { Code } from "@connectrpc/connect";
import { useQuery } from "@connectrpc/connect-query";
import { keepPreviousData } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { EventService, type Event } from "../../../gen/tenancy/v1/event_pb.js";
import type { Tenant } from "../../../gen/tenancy/v1/tenant_pb.js";
import { useSession } from "../access.js";
import { problemOf } from "../errors.js";
import { DataTable, ErrorBanner, Loading, Time } from "../ui.js";

const PAGE_SIZE = 50;

const WHAT: Record<string, string> = {
  "tenant.created": "Tenant created",
  "tenant.updated": "Tenant changed",
  "tenant.suspended": "Tenant suspended",
  "tenant.activated": "Tenant activated",
  "tenant.deleted": "Tenant deleted",
  "tenant.undeleted": "Tenant restored",
  "tenant.purged": "Tenant purged",
  "membership.created": "Member added",
  "membership.updated": "Member's roles changed",
  "membership.deleted": "Member removed",
};

function what(event: Event): string {
  const label = WHAT[event.type] ?? event.type;
  if (event.resource.case === "membership") {
    const m = event.resource.value;
    const roles = event.type !== "membership.deleted" ? ` (roles: ${m.roles.length ? m.roles.join(", ") : "none"})` : "";
    return `${label}: ${m.userId}${roles}`;
  }
  return label;
}

/**
 * The tenant's audit log (ListEvents, newest first): who changed what and
 * when, with the fields that changed. While the live feed runs, the page
 * refreshes it whenever an event arrives.
 */
export function HistoryTab({ tenant, live }: { tenant: Tenant; live: boolean }) {
  const { identity } = useSession();
  const [tokens, setTokens] = useState<string[]>([""]);
  const list = useQuery(
    EventService.method.listEvents,
    { tenantId: tenant.id, orderBy: "sequence desc", pageSize: PAGE_SIZE, pageToken: tokens[tokens.length - 1]! },
    { retry: false, placeholderData: keepPreviousData },
  );
  const who = (actor: string) => (actor === "" ? "the service" : actor === identity.userId ? "you" : actor);

  const problem = list.error ? problemOf(list.error) : undefined;
  return (
    <section aria-labelledby="history-heading">
      <h2 id="history-heading">History</h2>
      {problem?.code === Code.Unimplemented ? (
        <p>This server does not keep an audit log yet.</p>
      ) : problem ? (
        <ErrorBanner problem={problem} />
      ) : (
        <p className="hint">{live ? "Live: changes appear here as they are made." : "Changes, newest first."}</p>
      )}
      {problem ? null : !list.data ? (
        <Loading what="the history" />
      ) : list.data.events.length === 0 ? (
        <p>No changes recorded.</p>
      ) : (
        <DataTable label="History" className="history" columns={["When", "Who", "What", "Fields"]}>
          {list.data.events.map((event) => (
            <tr key={event.id} data-sequence={String(event.sequence)}>
              <td>
                <Time value={event.time} />
              </td>
              <td>
                <code>{who(event.actor)}</code>
              </td>
              <th scope="row">{what(event)}</th>
              <td>{event.changedFields?.paths.length ? event.changedFields.paths.map((p) => <code key={p}>{p}</code>).reduce<ReactNode[]>((all, p, i) => (i ? [...all, ", ", p] : [p]), []) : "—"}</td>
            </tr>
          ))}
        </DataTable>
      )}
      {list.data && (tokens.length > 1 || list.data.nextPageToken) && (
        <nav className="pager" aria-label="History pages">
          <button type="button" disabled={tokens.length === 1} onClick={() => setTokens(tokens.slice(0, -1))}>
            Newer
          </button>
          <button type="button" disabled={!list.data.nextPageToken} onClick={() => setTokens([...tokens, list.data.nextPageToken])}>
            Older
          </button>
        </nav>
      )}
    </section>
  );
}
