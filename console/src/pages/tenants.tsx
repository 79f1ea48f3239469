import { useQuery } from "@connectrpc/connect-query";
import { keepPreviousData } from "@tanstack/react-query";
import { useEffect, useId, useState, type FormEvent } from "react";
import { TenantService } from "../../../gen/tenancy/v1/tenant_pb.js";
import { useSession } from "../access.js";
import { fieldErrors, problemOf } from "../errors.js";
import { Link, navigate, useLocation } from "../router.js";
import { DataTable, ErrorBanner, Loading, PageHeading, Pager, StateBadge, Time } from "../ui.js";

const PAGE_SIZE = 20;

/** Filters to start from (AIP-160, as ListTenants reads them). */
const EXAMPLES = [
  { filter: 'domain:"example"', says: "domain contains “example”" },
  { filter: 'params.plan = "pro"', says: "on the pro plan" },
  { filter: `create_time > "${new Date(Date.now() - 7 * 86_400_000).toISOString().slice(0, 10)}T00:00:00Z"`, says: "created in the last 7 days" },
  { filter: "NOT params.beta:*", says: "without a beta setting" },
];

const ORDERS = [
  { value: "", label: "Oldest first" },
  { value: "create_time desc", label: "Newest first" },
  { value: "name", label: "Name, A to Z" },
  { value: "name desc", label: "Name, Z to A" },
  { value: "domain", label: "Domain, A to Z" },
  { value: "update_time desc", label: "Recently changed" },
];

function listPath(filter: string, orderBy: string, showDeleted: boolean): string {
  const search = new URLSearchParams();
  if (filter) search.set("filter", filter);
  if (orderBy) search.set("order_by", orderBy);
  if (showDeleted) search.set("show_deleted", "true");
  const query = search.toString();
  return query ? `/?${query}` : "/";
}

/**
 * The tenants the person may see (all of them for a platform administrator,
 * their own otherwise, as ListTenants decides), with the filter, sort and
 * "show deleted" in the address so that a view can be shared.
 */
export function TenantsPage() {
  const { identity } = useSession();
  const { search } = useLocation();
  const filter = search.get("filter") ?? "";
  const orderBy = search.get("order_by") ?? "";
  const showDeleted = search.get("show_deleted") === "true";
  const [draft, setDraft] = useState(filter);
  // Keyset pagination: the tokens of the pages before this one, to go back.
  const [tokens, setTokens] = useState<string[]>([""]);
  const pageToken = tokens[tokens.length - 1]!;
  const filterId = useId();

  useEffect(() => {
    setDraft(filter);
    setTokens([""]);
  }, [filter, orderBy, showDeleted]);

  const list = useQuery(
    TenantService.method.listTenants,
    { filter, orderBy, showDeleted, pageSize: PAGE_SIZE, pageToken },
    { placeholderData: keepPreviousData, retry: false },
  );
  const problem = list.error ? problemOf(list.error) : undefined;
  const filterErrors = fieldErrors(problem, "filter");

  const apply = (next: { filter?: string; orderBy?: string; showDeleted?: boolean }) =>
    navigate(listPath(next.filter ?? filter, next.orderBy ?? orderBy, next.showDeleted ?? showDeleted));

  const submit = (event: FormEvent) => {
    event.preventDefault();
    apply({ filter: draft.trim() });
  };

  const page = tokens.length;
  const total = list.data?.totalSize ?? 0;
  return (
    <>
      <div className="page-head">
        <PageHeading title="Tenants">Tenants</PageHeading>
        {identity.platformAdmin && (
          <Link to="/tenants/new" className="button primary">
            New tenant
          </Link>
        )}
      </div>

      <form className="filters" onSubmit={submit} role="search" aria-label="Tenants">
        <div className="field filter-field">
          <label htmlFor={filterId}>Filter</label>
          <div className="input-row">
            <input
              id={filterId}
              type="search"
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
              placeholder='domain:"example" AND params.plan = "pro"'
              spellCheck={false}
              autoCapitalize="off"
              aria-describedby={`${filterId}-examples${filterErrors.length ? ` ${filterId}-error` : ""}`}
              aria-invalid={filterErrors.length > 0 || undefined}
            />
            <button type="submit">Apply</button>
            {filter && (
              <button type="button" onClick={() => apply({ filter: "" })}>
                Clear
              </button>
            )}
          </div>
          {filterErrors.length > 0 && (
            <p className="field-error" id={`${filterId}-error`}>
              {filterErrors.join(" ")}
            </p>
          )}
          <div className="examples" id={`${filterId}-examples`}>
            <span>Examples (AIP-160):</span>
            <ul>
              {EXAMPLES.map((example) => (
                <li key={example.filter}>
                  <button type="button" className="chip" onClick={() => apply({ filter: example.filter })} title={example.says}>
                    <code>{example.filter}</code>
                  </button>
                </li>
              ))}
            </ul>
          </div>
        </div>
        <div className="filter-options">
          <div className="field">
            <label htmlFor={`${filterId}-order`}>Sort</label>
            <select id={`${filterId}-order`} value={orderBy} onChange={(e) => apply({ orderBy: e.target.value })}>
              {ORDERS.map((order) => (
                <option key={order.value} value={order.value}>
                  {order.label}
                </option>
              ))}
            </select>
          </div>
          <div className="checkbox">
            <input id={`${filterId}-deleted`} type="checkbox" checked={showDeleted} onChange={(e) => apply({ showDeleted: e.target.checked })} />
            <label htmlFor={`${filterId}-deleted`}>Show deleted tenants</label>
          </div>
        </div>
      </form>

      <ErrorBanner problem={problem && !filterErrors.length ? problem : undefined} />
      {list.isPending && !problem && <Loading what="tenants" />}
      {list.data && (
        <>
          <p className="count" role="status">
            {list.isPlaceholderData
              ? "Loading…"
              : total === 0
                ? "No tenant matches."
                : `${total} ${total === 1 ? "tenant" : "tenants"}${total > PAGE_SIZE ? `, page ${page}` : ""}`}
          </p>
          {list.data.tenants.length > 0 && (
            <DataTable label="Tenants" columns={["Name", "Domain", "State", "Created"]}>
              {list.data.tenants.map((tenant) => (
                <tr key={tenant.id}>
                  <th scope="row">
                    <Link to={`/tenants/${tenant.id}`}>{tenant.name}</Link>
                  </th>
                  <td>{tenant.domain}</td>
                  <td>
                    <StateBadge state={tenant.state} />
                  </td>
                  <td>
                    <Time value={tenant.createTime} />
                  </td>
                </tr>
              ))}
            </DataTable>
          )}
          <Pager label="Pages" tokens={tokens} setTokens={setTokens} nextPageToken={list.data.nextPageToken} />
        </>
      )}
    </>
  );
}
