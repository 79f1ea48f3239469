import { useMutation, useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { MembershipService, type Membership } from "../../../gen/tenancy/v1/membership_pb.js";
import { Tenant_State, type Tenant } from "../../../gen/tenancy/v1/tenant_pb.js";
import { useSession, type TenantPermissions } from "../access.js";
import { fieldErrors, problemOf, type Problem } from "../errors.js";
import { ConfirmDialog, DataTable, ErrorBanner, FormError, Loading, Notice, Pager, TextField, Time } from "../ui.js";

const PAGE_SIZE = 50;

function parseRoles(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((role) => role.trim())
    .filter(Boolean);
}

/** The refusals of membership changes as sentences about these people. */
function explain(problem: Problem, tenant: Tenant, userId: string): string {
  switch (problem.reason) {
    case "LAST_ADMIN":
      return `${userId} is the last administrator of ${tenant.name}, and a tenant with administrators always keeps one. Make another member an administrator first.`;
    case "MEMBERSHIP_EXISTS":
      return `${userId} is already a member of ${tenant.name}.`;
    case "TENANT_SUSPENDED":
      return `${tenant.name} is suspended and accepts no new members: activate it first.`;
    default:
      // A role the service refused (membership.roles[1]): say which and why.
      return problem.fields.length ? problem.fields.map((f) => f.description).join(" ") : problem.message;
  }
}

export function MembersTab({ tenant, permissions }: { tenant: Tenant; permissions: TenantPermissions }) {
  const { identity } = useSession();
  const [tokens, setTokens] = useState<string[]>([""]);
  // A member who does not administer the tenant may list only their own membership.
  const request = permissions.manageMembers
    ? { tenantId: tenant.id, pageSize: PAGE_SIZE, pageToken: tokens[tokens.length - 1]! }
    : { tenantId: tenant.id, userId: identity.userId ?? "" };
  const list = useQuery(MembershipService.method.listMemberships, request, { retry: false });
  const [editing, setEditing] = useState<string>();
  const [removing, setRemoving] = useState<Membership>();
  const [rowProblem, setRowProblem] = useState<{ id: string; message: string }>();
  const [done, setDone] = useState<string>();
  const queryClient = useQueryClient();
  const remove = useMutation(MembershipService.method.deleteMembership);
  const refresh = () => queryClient.invalidateQueries({ queryKey: ["connect-query"] });
  const canAdd = permissions.manageMembers && tenant.state !== Tenant_State.DELETED;

  if (list.error) return <ErrorBanner problem={problemOf(list.error)} />;
  return (
    <section aria-labelledby="members-heading">
      <h2 id="members-heading">Members</h2>
      {done && <Notice>{done}</Notice>}
      {canAdd && <AddMember tenant={tenant} onAdded={(m) => (setDone(`${m.userId} was added.`), void refresh())} />}
      {!permissions.manageMembers && <p>You see your own membership; the tenant's administrators see everyone's.</p>}
      {list.isPending ? (
        <Loading what="members" />
      ) : (
        <>
          <p className="count">{list.data.totalSize === 0 ? "No members yet." : `${list.data.totalSize} ${list.data.totalSize === 1 ? "member" : "members"}`}</p>
          {list.data.memberships.length > 0 && (
            <DataTable label="Members" columns={["User", "Roles", "Added", permissions.manageMembers && "Actions"]}>
              {list.data.memberships.map((membership) => (
                <tr key={membership.id}>
                  <th scope="row">
                    <code>{membership.userId}</code>
                    {membership.userId === identity.userId && " (you)"}
                  </th>
                  <td>
                    {editing === membership.id ? (
                      <EditRoles
                        membership={membership}
                        onDone={(problem) => {
                          if (problem) setRowProblem({ id: membership.id, message: explain(problem, tenant, membership.userId) });
                          else {
                            setEditing(undefined);
                            setRowProblem(undefined);
                            setDone(`Roles of ${membership.userId} saved.`);
                            void refresh();
                          }
                        }}
                        onCancel={() => (setEditing(undefined), setRowProblem(undefined))}
                      />
                    ) : membership.roles.length ? (
                      membership.roles.join(", ")
                    ) : (
                      <span className="muted">no roles</span>
                    )}
                    {rowProblem?.id === membership.id && (
                      <p className="field-error" role="alert">
                        {rowProblem.message}
                      </p>
                    )}
                  </td>
                  <td>
                    <Time value={membership.createTime} />
                  </td>
                  {permissions.manageMembers && (
                    <td>
                      {editing !== membership.id && (
                        <div className="row-actions">
                          <button type="button" onClick={() => (setEditing(membership.id), setRowProblem(undefined), setDone(undefined))} aria-label={`Change roles of ${membership.userId}`}>
                            Change roles
                          </button>
                          <button type="button" className="danger" onClick={() => (setRemoving(membership), setRowProblem(undefined), setDone(undefined))} aria-label={`Remove ${membership.userId}`}>
                            Remove…
                          </button>
                        </div>
                      )}
                    </td>
                  )}
                </tr>
              ))}
            </DataTable>
          )}
          <Pager label="Member pages" tokens={tokens} setTokens={setTokens} nextPageToken={list.data.nextPageToken} />
        </>
      )}
      {removing && (
        <ConfirmDialog
          title={`Remove ${removing.userId} from ${tenant.name}?`}
          confirmLabel="Remove member"
          danger
          busy={remove.isPending}
          onClose={() => setRemoving(undefined)}
          onConfirm={() =>
            remove.mutate(
              { id: removing.id },
              {
                onSuccess: () => {
                  setDone(`${removing.userId} was removed from ${tenant.name}.`);
                  setRemoving(undefined);
                  void refresh();
                },
                onError: (error) => {
                  setRowProblem({ id: removing.id, message: explain(problemOf(error), tenant, removing.userId) });
                  setRemoving(undefined);
                },
              },
            )
          }
        >
          <p>
            They lose access to <strong>{tenant.name}</strong> at once.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function AddMember({ tenant, onAdded }: { tenant: Tenant; onAdded: (membership: Membership) => void }) {
  const [userId, setUserId] = useState("");
  const [roles, setRoles] = useState("");
  const [problem, setProblem] = useState<Problem>();
  const create = useMutation(MembershipService.method.createMembership);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    setProblem(undefined);
    create.mutate(
      { membership: { tenantId: tenant.id, userId: userId.trim(), roles: parseRoles(roles) } },
      {
        onSuccess: (membership) => {
          setUserId("");
          setRoles("");
          onAdded(membership);
        },
        onError: (error) => setProblem(problemOf(error)),
      },
    );
  };
  const userErrors = [...fieldErrors(problem, "membership.user_id"), ...(problem?.reason === "MEMBERSHIP_EXISTS" ? ["Already a member."] : [])];
  const roleErrors = problem?.fields.filter((f) => f.field.startsWith("membership.roles")).map((f) => f.description) ?? [];
  return (
    <form className="form add-member" onSubmit={submit} aria-labelledby="add-member-heading" noValidate>
      <h3 id="add-member-heading">Add a member</h3>
      {problem && (
        <FormError problem={problem.fields.length ? problem : { ...problem, message: explain(problem, tenant, userId.trim()) }} placed={["membership.user_id", "membership.roles"]} />
      )}
      <div className="inline-fields">
        <TextField
          label="User id"
          hint="The user's id in your identity system (a UUID)."
          value={userId}
          onChange={(e) => setUserId(e.target.value)}
          autoComplete="off"
          spellCheck={false}
          required
          errors={userErrors}
        />
        <TextField label="Roles" hint="Separated by commas, such as admin, billing." value={roles} onChange={(e) => setRoles(e.target.value)} autoComplete="off" errors={roleErrors} />
      </div>
      <div className="actions">
        <button type="submit" className="primary" disabled={create.isPending}>
          {create.isPending ? "Adding…" : "Add member"}
        </button>
      </div>
    </form>
  );
}

function EditRoles({ membership, onDone, onCancel }: { membership: Membership; onDone: (problem?: Problem) => void; onCancel: () => void }) {
  const [roles, setRoles] = useState(membership.roles.join(", "));
  const update = useMutation(MembershipService.method.updateMembership);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    update.mutate(
      { membership: { id: membership.id, etag: membership.etag, roles: parseRoles(roles) }, updateMask: { paths: ["roles"] } },
      { onSuccess: () => onDone(), onError: (error) => onDone(problemOf(error)) },
    );
  };
  return (
    <form className="edit-roles" onSubmit={submit}>
      <TextField label={`Roles of ${membership.userId}`} value={roles} onChange={(e) => setRoles(e.target.value)} autoComplete="off" autoFocus />
      <div className="actions">
        <button type="submit" className="primary" disabled={update.isPending}>
          Save roles
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
