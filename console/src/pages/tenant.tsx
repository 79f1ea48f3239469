import { Code } from "@connectrpc/connect";
import { callUnaryMethod, createConnectQueryKey, useMutation, useQuery, useTransport } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent } from "react";
import { Tenant_State, TenantService, type Tenant } from "../../../gen/tenancy/v1/tenant_pb.js";
import { useSession, useTenantPermissions, type TenantPermissions } from "../access.js";
import { fieldErrors, fieldsUnder, problemOf, type Problem } from "../errors.js";
import { useTenantFeed, type FeedStatus } from "../live.js";
import { paramsText, ParamsEditor } from "../params-editor.js";
import { Link, navigate } from "../router.js";
import { ConfirmDialog, ErrorBanner, FormError, Loading, Notice, PageHeading, StateBadge, TextField, Time } from "../ui.js";
import { HistoryTab } from "./history.js";
import { MembersTab } from "./members.js";
import { paramsFromText } from "./new-tenant.js";

type Tab = "settings" | "members" | "history";

const TABS: { tab: Tab; label: string; suffix: string }[] = [
  { tab: "settings", label: "Settings", suffix: "" },
  { tab: "members", label: "Members", suffix: "/members" },
  { tab: "history", label: "History", suffix: "/history" },
];

function FeedIndicator({ status }: { status: FeedStatus }) {
  const text = { connecting: "Connecting to live updates…", live: "Live", unavailable: "Live updates unavailable" }[status];
  return (
    <span className={`feed feed-${status}`} title={status === "live" ? "Changes made by others appear here as they happen" : undefined}>
      {text}
    </span>
  );
}

export function TenantPage({ id, tab }: { id: string; tab: Tab }) {
  const tenant = useQuery(TenantService.method.getTenant, { id }, { retry: false });
  const permissions = useTenantPermissions(id);
  const feed = useTenantFeed(id);

  if (tenant.error) {
    const problem = problemOf(tenant.error);
    return (
      <>
        <p className="breadcrumb">
          <Link to="/">Tenants</Link>
        </p>
        <PageHeading title="Tenant">Tenant</PageHeading>
        <ErrorBanner problem={problem}>
          {problem.code === Code.PermissionDenied && <p>You can open only the tenants you are a member of.</p>}
        </ErrorBanner>
      </>
    );
  }
  if (!tenant.data) return <Loading what="the tenant" />;
  const t = tenant.data;
  return (
    <>
      <p className="breadcrumb">
        <Link to="/">Tenants</Link>
      </p>
      <div className="page-head">
        <div>
          <PageHeading title={t.name}>{t.name}</PageHeading>
          <p className="subtitle">
            <span>{t.domain}</span> <StateBadge state={t.state} /> <FeedIndicator status={feed.status} />
          </p>
        </div>
        <LifecycleActions tenant={t} permissions={permissions} />
      </div>
      {!permissions.editParams && !permissions.loading && (
        <p className="read-only-note">You are a member of this tenant: you can see it, not change it.</p>
      )}
      <nav className="tabs" aria-label="Tenant">
        {TABS.map((entry) => (
          <Link key={entry.tab} to={`/tenants/${t.id}${entry.suffix}`} aria-current={tab === entry.tab ? "page" : undefined}>
            {entry.label}
          </Link>
        ))}
      </nav>
      {tab === "settings" && <SettingsTab tenant={t} permissions={permissions} />}
      {tab === "members" && <MembersTab tenant={t} permissions={permissions} />}
      {tab === "history" && <HistoryTab tenant={t} live={feed.status === "live"} />}
    </>
  );
}

/** Suspend or activate; delete, restore or purge, each confirmed by name. */
function LifecycleActions({ tenant, permissions }: { tenant: Tenant; permissions: TenantPermissions }) {
  const [dialog, setDialog] = useState<"delete" | "undelete" | "purge">();
  const [force, setForce] = useState(false);
  const [problem, setProblem] = useState<Problem>();
  const [done, setDone] = useState<string>();
  const queryClient = useQueryClient();
  const update = useMutation(TenantService.method.updateTenant);
  const remove = useMutation(TenantService.method.deleteTenant);
  const undelete = useMutation(TenantService.method.undeleteTenant);
  const purge = useMutation(TenantService.method.purgeTenant);
  const busy = update.isPending || remove.isPending || undelete.isPending || purge.isPending;

  const refresh = () => queryClient.invalidateQueries({ queryKey: ["connect-query"] });
  const close = () => {
    setDialog(undefined);
    setProblem(undefined);
    setForce(false);
  };
  const succeeded = (message: string) => {
    close();
    setDone(message);
    void refresh();
  };
  const failed = (error: Error) => setProblem(problemOf(error));

  if (!permissions.editIdentity && !permissions.lifecycle) return null;
  const deleted = tenant.state === Tenant_State.DELETED;
  const suspended = tenant.state === Tenant_State.SUSPENDED;

  const setState = (state: Tenant_State, message: string) => {
    setDone(undefined);
    setProblem(undefined);
    update.mutate(
      { tenant: { id: tenant.id, etag: tenant.etag, state }, updateMask: { paths: ["state"] } },
      { onSuccess: () => succeeded(message), onError: failed },
    );
  };

  return (
    <div className="lifecycle">
      <div className="actions">
        {!deleted && permissions.editIdentity && (
          <button type="button" disabled={busy} onClick={() => (suspended ? setState(Tenant_State.ACTIVE, `${tenant.name} is active.`) : setState(Tenant_State.SUSPENDED, `${tenant.name} is suspended.`))}>
            {suspended ? "Activate" : "Suspend"}
          </button>
        )}
        {permissions.lifecycle && !deleted && (
          <button type="button" className="danger" onClick={() => (setDone(undefined), setDialog("delete"))}>
            Delete…
          </button>
        )}
        {permissions.lifecycle && deleted && (
          <>
            <button type="button" className="primary" onClick={() => (setDone(undefined), setDialog("undelete"))}>
              Restore…
            </button>
            <button type="button" className="danger" onClick={() => (setDone(undefined), setDialog("purge"))}>
              Purge…
            </button>
          </>
        )}
      </div>
      {done && <Notice>{done}</Notice>}
      {!dialog && <ErrorBanner problem={problem} />}
      {dialog === "delete" && (
        <ConfirmDialog
          title={`Delete ${tenant.name}?`}
          confirmLabel={`Delete ${tenant.name}`}
          danger
          busy={busy}
          problem={problem}
          onClose={close}
          onConfirm={() =>
            remove.mutate({ id: tenant.id, etag: tenant.etag, force }, { onSuccess: () => succeeded(`${tenant.name} is deleted. It can be restored until it is purged.`), onError: failed })
          }
        >
          <p>
            <strong>{tenant.name}</strong> ({tenant.domain}) will no longer be found by its domain and is hidden from lists. Its name and domain stay reserved, and it can be
            restored until it is purged.
          </p>
          {problem?.reason === "TENANT_HAS_MEMBERSHIPS" && (
            <p>It still has {problem.metadata.membership_count ?? "some"} members.</p>
          )}
          <div className="checkbox">
            <input id="delete-force" type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
            <label htmlFor="delete-force">Also remove its memberships</label>
          </div>
        </ConfirmDialog>
      )}
      {dialog === "undelete" && (
        <ConfirmDialog
          title={`Restore ${tenant.name}?`}
          confirmLabel={`Restore ${tenant.name}`}
          busy={busy}
          problem={problem}
          onClose={close}
          onConfirm={() => undelete.mutate({ id: tenant.id, etag: tenant.etag }, { onSuccess: () => succeeded(`${tenant.name} is restored and active.`), onError: failed })}
        >
          <p>
            <strong>{tenant.name}</strong> ({tenant.domain}) becomes active again and is found by its domain.
          </p>
        </ConfirmDialog>
      )}
      {dialog === "purge" && (
        <ConfirmDialog
          title={`Purge ${tenant.name} for good?`}
          confirmLabel={`Purge ${tenant.name}`}
          danger
          typeToConfirm={tenant.name}
          busy={busy}
          problem={problem}
          onClose={close}
          onConfirm={() =>
            purge.mutate(
              { id: tenant.id, etag: tenant.etag },
              {
                onSuccess: () => {
                  close();
                  void refresh();
                  navigate(`/?show_deleted=true`);
                },
                onError: failed,
              },
            )
          }
        >
          <p>
            <strong>{tenant.name}</strong> ({tenant.domain}) and its memberships are removed and cannot be restored. Its name and domain become free.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}

interface Draft {
  /** The version the edits started from: its etag makes the save conditional. */
  base: Tenant;
  name: string;
  domain: string;
  params: string;
}

const draftOf = (tenant: Tenant): Draft => ({ base: tenant, name: tenant.name, domain: tenant.domain, params: paramsText(tenant.params) });

function changedPaths(draft: Draft): string[] {
  const paths: string[] = [];
  if (draft.name !== draft.base.name) paths.push("name");
  if (draft.domain !== draft.base.domain) paths.push("domain");
  const parsed = paramsFromText(draft.params);
  if ("error" in parsed || JSON.stringify(parsed.params) !== JSON.stringify(draft.base.params ?? {})) paths.push("params");
  return paths;
}

/**
 * Name, domain and params, saved with the etag of the version the edits
 * started from, so that a change someone else made meanwhile is never
 * overwritten unknowingly.
 */
function SettingsTab({ tenant, permissions }: { tenant: Tenant; permissions: TenantPermissions }) {
  const { identity } = useSession();
  const [draft, setDraft] = useState<Draft>(() => draftOf(tenant));
  const [problem, setProblem] = useState<Problem>();
  const [localError, setLocalError] = useState<string>();
  const [saved, setSaved] = useState(false);
  const update = useMutation(TenantService.method.updateTenant);
  const transport = useTransport();
  const queryClient = useQueryClient();
  const dirty = changedPaths(draft).length > 0;
  const deleted = tenant.state === Tenant_State.DELETED;
  const editable = (permissions.editParams || permissions.editIdentity) && !deleted;

  // A newer version (someone's save, seen by the live feed or a refetch)
  // replaces an untouched form; edits in progress are kept, with a warning.
  useEffect(() => {
    if (tenant.etag !== draft.base.etag && !dirty) setDraft(draftOf(tenant));
  }, [tenant, draft.base.etag, dirty]);
  const changedMeanwhile = tenant.etag !== draft.base.etag && dirty;

  const save = (base: Tenant) => {
    const paths = changedPaths({ ...draft, base });
    const parsed = paramsFromText(draft.params);
    if ("error" in parsed) {
      setLocalError(parsed.error);
      return;
    }
    setLocalError(undefined);
    setProblem(undefined);
    setSaved(false);
    if (paths.length === 0) {
      setDraft(draftOf(base));
      setSaved(true);
      return;
    }
    update.mutate(
      { tenant: { id: base.id, etag: base.etag, name: draft.name, domain: draft.domain, params: parsed.params }, updateMask: { paths } },
      {
        onSuccess: (next) => {
          queryClient.setQueryData(createConnectQueryKey({ schema: TenantService.method.getTenant, input: { id: next.id }, transport, cardinality: "finite" }), next);
          void queryClient.invalidateQueries({ queryKey: ["connect-query"] });
          setDraft(draftOf(next));
          setSaved(true);
        },
        onError: (error) => setProblem(problemOf(error)),
      },
    );
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    save(draft.base);
  };

  /** Their version, fetched now (the page may not have it yet). */
  const latest = () => callUnaryMethod(transport, TenantService.method.getTenant, { id: tenant.id });
  const loadTheirs = async () => {
    try {
      const current = await latest();
      setDraft(draftOf(current));
      setProblem(undefined);
      queryClient.setQueryData(createConnectQueryKey({ schema: TenantService.method.getTenant, input: { id: current.id }, transport, cardinality: "finite" }), current);
    } catch (error) {
      setProblem(problemOf(error));
    }
  };
  const overwrite = async () => {
    try {
      save(await latest());
    } catch (error) {
      setProblem(problemOf(error));
    }
  };

  const conflict = problem?.reason === "ETAG_MISMATCH";
  return (
    <section aria-label="Settings">
      <form onSubmit={submit} className="form" noValidate>
        {conflict ? (
          <div className="banner banner-error" role="alert">
            <p>
              <strong>Not saved: someone else changed {tenant.name} after you started editing.</strong> Your edits are still here. Load their version to start again
              from it, or save yours over it.
            </p>
            <div className="actions">
              <button type="button" onClick={loadTheirs}>
                Load their version (discard my edits)
              </button>
              <button type="button" onClick={overwrite}>
                Save mine over theirs
              </button>
            </div>
          </div>
        ) : (
          <FormError problem={problem} placed={["tenant.name", "tenant.domain", "tenant.params"]} local={localError} />
        )}
        {changedMeanwhile && !conflict && (
          <Notice>
            {tenant.name} was changed by someone else while you were editing; saving now will be refused.{" "}
            <button type="button" className="link" onClick={loadTheirs}>
              Load their version
            </button>
          </Notice>
        )}
        {saved && !dirty && <Notice>Saved.</Notice>}
        {deleted && <p className="read-only-note">This tenant is deleted: restore it to change it.</p>}
        {permissions.editIdentity && !deleted ? (
          <>
            <TextField
              label="Name"
              value={draft.name}
              onChange={(e) => setDraft({ ...draft, name: e.target.value })}
              autoComplete="off"
              errors={[...fieldErrors(problem, "tenant.name"), ...(problem?.reason === "TENANT_NAME_TAKEN" ? ["This name is taken."] : [])]}
            />
            <TextField
              label="Domain"
              value={draft.domain}
              onChange={(e) => setDraft({ ...draft, domain: e.target.value })}
              autoComplete="off"
              autoCapitalize="off"
              spellCheck={false}
              errors={[...fieldErrors(problem, "tenant.domain"), ...(problem?.reason === "TENANT_DOMAIN_TAKEN" ? ["This domain is taken."] : [])]}
            />
          </>
        ) : null}
        <ParamsEditor
          value={draft.params}
          onChange={(params) => setDraft({ ...draft, params })}
          violations={fieldsUnder(problem, "tenant.params")}
          readOnly={!permissions.editParams || deleted}
          showSyntaxError={localError !== undefined}
        />
        {editable && (
          <div className="actions">
            <button type="submit" className="primary" disabled={update.isPending}>
              {update.isPending ? "Saving…" : "Save changes"}
            </button>
            <button type="button" disabled={!dirty} onClick={() => (setDraft(draftOf(tenant)), setProblem(undefined), setLocalError(undefined))}>
              Discard changes
            </button>
          </div>
        )}
      </form>
      <dl className="details">
        <dt>ID</dt>
        <dd>
          <code>{tenant.id}</code>
        </dd>
        <dt>Created</dt>
        <dd>
          <Time value={tenant.createTime} />
        </dd>
        <dt>Last changed</dt>
        <dd>
          <Time value={tenant.updateTime} />
        </dd>
        {deleted && (
          <>
            <dt>Deleted</dt>
            <dd>
              <Time value={tenant.deleteTime} />
            </dd>
            <dt>Purged for good</dt>
            <dd>
              <Time value={tenant.purgeTime} />
            </dd>
          </>
        )}
        {identity.userId && (
          <>
            <dt>Your roles here</dt>
            <dd>{permissions.roles?.length ? permissions.roles.join(", ") : permissions.roles ? "member, no roles" : "not a member"}</dd>
          </>
        )}
      </dl>
    </section>
  );
}
