import { isFieldSet, type DescMessage, type DescMethodUnary, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { EntityManager } from "@mikro-orm/postgresql";
import { TenantSchema, TenantService, type LookupTenantRequest, type UpdateTenantRequest } from "../../gen/tenancy/v1/tenant_pb.js";
import { MembershipService } from "../../gen/tenancy/v1/membership_pb.js";
import { EventService } from "../../gen/tenancy/v1/event_pb.js";
import { ParamsSchemaService } from "../../gen/tenancy/v1/params_schema_pb.js";
import { invalidArgument, Violations } from "../common/errors.js";
import { optionalId, requireId } from "../common/ids.js";
import { hasAdminRole } from "../memberships/membership.roles.js";
import { checkDomain, couldBeStoredName } from "../tenants/tenant.validation.js";
import { parseTenantMask } from "../tenants/tenant.update-mask.js";
import { principalOf, type Principal } from "./principal.js";
import { PolicyRepository } from "./policy.repository.js";
import { procedureOf } from "../rpc/procedure.js";

/**
 * Who may do what: the one place where access is decided. The auth
 * interceptor asks `authorize` before every RPC; a procedure without a rule
 * here is for platform administrators only, so a new RPC is closed until
 * someone opens it on purpose.
 *
 * | caller                      | may                                                              |
 * |-----------------------------|------------------------------------------------------------------|
 * | platform administrator      | everything                                                       |
 * | member of T with role admin | get/look up T, update T's params; create, get, list, update and  |
 * |                             | delete T's memberships (the service keeps T's last admin)        |
 * | member of T                 | get/look up T; get and list their own memberships                |
 * | anyone else                 | nothing                                                          |
 *
 * Every authenticated caller may read params schemas (GetParamsSchema,
 * ListParamsSchemas); registering them, checking and rebinding tenants, and
 * changing a tenant's `params_schema` are for platform administrators.
 *
 * ListTenants is open to every caller but shows a non-administrator only the
 * tenants they belong to (`tenantsVisibleTo`). So are ListEvents and
 * WatchEvents, which show the events of what the caller may read by the
 * rules above (src/events/event.visibility.ts).
 *
 * A denial never depends on whether the resource exists: "no such tenant"
 * and "not your tenant" are the same PERMISSION_DENIED, with the same
 * message, so the answers are no oracle for what exists. Malformed
 * arguments are INVALID_ARGUMENT, which says nothing about any resource.
 */
export type Decision = { allowed: true } | { allowed: false; message: string };

const ALLOW: Decision = { allowed: true };
const deny = (message: string): Decision => ({ allowed: false, message });

const PLATFORM_ADMIN_ONLY = "only a platform administrator may do this";
const NOT_A_MEMBER = "the caller is not a member of this tenant";
const NOT_TENANT_ADMIN = "the caller is not an administrator of this tenant";
const NOT_YOURS = "the caller may see only its own memberships and those of tenants it administers";
const PARAMS_ONLY =
  "a tenant administrator may change only the tenant's params: send update_mask with params or params.<key> paths, " +
  "or leave it empty and set no other field";

/** What a rule may ask about the caller; every method is one indexed query. */
class Caller {
  private readonly access: PolicyRepository;

  constructor(
    readonly userId: string,
    em: EntityManager,
  ) {
    this.access = new PolicyRepository(em);
  }

  rolesIn(tenantId: string): Promise<string[] | undefined> {
    return this.access.rolesIn(tenantId, this.userId);
  }

  membership(id: string) {
    return this.access.membershipAccess(id, this.userId);
  }

  /** The caller's roles in the tenant LookupTenant names, checked as the lookup itself checks its key. */
  async rolesInLookedUpTenant(key: LookupTenantRequest["key"]): Promise<string[] | undefined> {
    if (key.case === "domain") {
      const violations = new Violations();
      const domain = checkDomain(key.value, "domain", violations);
      violations.throwIfAny();
      return this.access.rolesInTenantWithDomain(domain, this.userId);
    }
    if (key.case === "name") {
      const name = key.value.trim();
      if (name === "") throw invalidArgument("name", "must not be empty");
      if (!couldBeStoredName(name)) return undefined;
      return this.access.rolesInTenantWithName(name, this.userId);
    }
    throw invalidArgument("key", "set either domain or name");
  }
}

type Rule<I extends DescMessage> = (request: MessageShape<I>, caller: Caller) => Decision | Promise<Decision>;

const rules = new Map<string, Rule<DescMessage>>();

function rule<I extends DescMessage, O extends DescMessage>(method: DescMethodUnary<I, O>, check: Rule<I>): void {
  rules.set(procedureOf(method), check as Rule<DescMessage>);
}

const member = (roles: string[] | undefined): Decision => (roles ? ALLOW : deny(NOT_A_MEMBER));
const admin = (roles: string[] | undefined): Decision => (hasAdminRole(roles) ? ALLOW : deny(NOT_TENANT_ADMIN));


/**
 * Fields of Tenant that a tenant administrator's update may carry when its
 * mask is empty (an empty mask updates every field that is set): the
 * identity, the precondition, params, and output-only fields the service
 * ignores. Any other field, including ones added later, makes it a
 * platform administrator's update.
 */
const setByTenantAdmin = new Set(["id", "etag", "params", "create_time", "update_time", "delete_time", "purge_time"]);

/** True when the update touches nothing but params, read exactly as TenantService reads the mask. */
function changesOnlyParams(request: UpdateTenantRequest): boolean {
  const tenant = request.tenant!;
  const paths = request.updateMask?.paths ?? [];
  if (paths.length === 0) {
    return TenantSchema.fields.every((field) => setByTenantAdmin.has(field.name) || !isFieldSet(tenant, field));
  }
  const violations = new Violations();
  const parsed = parseTenantMask(paths, violations);
  violations.throwIfAny();
  return parsed.every((path) => path.field === "params" || path.field === "params.key");
}

const platformAdminOnly = () => deny(PLATFORM_ADMIN_ONLY);

rule(TenantService.method.createTenant, platformAdminOnly);
rule(TenantService.method.deleteTenant, platformAdminOnly);
rule(TenantService.method.undeleteTenant, platformAdminOnly);
rule(TenantService.method.purgeTenant, platformAdminOnly);

rule(TenantService.method.getTenant, async (request, caller) => member(await caller.rolesIn(requireId(request.id, "id"))));

rule(TenantService.method.lookupTenant, async (request, caller) => member(await caller.rolesInLookedUpTenant(request.key)));

// Open to all; the query itself is restricted (tenantsVisibleTo).
rule(TenantService.method.listTenants, () => ALLOW);

rule(TenantService.method.updateTenant, async (request, caller) => {
  if (!request.tenant) throw invalidArgument("tenant", "is required");
  const decision = admin(await caller.rolesIn(requireId(request.tenant.id, "tenant.id")));
  if (!decision.allowed) return decision;
  return changesOnlyParams(request) ? ALLOW : deny(PARAMS_ONLY);
});

// Params schemas are the contract of params: every caller may read them
// (a tenant administrator needs to know what their params may hold). Writing
// them, checking and rebinding tenants have no rule: platform administrators.
rule(ParamsSchemaService.method.getParamsSchema, () => ALLOW);
rule(ParamsSchemaService.method.listParamsSchemas, () => ALLOW);

rule(MembershipService.method.createMembership, async (request, caller) => {
  if (!request.membership) throw invalidArgument("membership", "is required");
  return admin(await caller.rolesIn(requireId(request.membership.tenantId, "membership.tenant_id")));
});

rule(MembershipService.method.getMembership, async (request, caller) => {
  const target = await caller.membership(requireId(request.id, "id"));
  return target && (target.userId === caller.userId || hasAdminRole(target.callerRoles)) ? ALLOW : deny(NOT_YOURS);
});

rule(MembershipService.method.listMemberships, async (request, caller) => {
  const violations = new Violations();
  const tenantId = optionalId(request.tenantId, "tenant_id", violations);
  const userId = optionalId(request.userId, "user_id", violations);
  violations.throwIfAny();
  // "My tenants": one's own memberships, everywhere or in one tenant.
  if (userId === caller.userId) return ALLOW;
  if (tenantId === undefined) return deny(NOT_YOURS);
  const decision = admin(await caller.rolesIn(tenantId));
  return decision.allowed ? ALLOW : deny(NOT_YOURS);
});

// Changing a membership, even one's own: a plain member may not grant
// themselves roles, nor leave on their own (an administrator removes them).
const adminOfTargetTenant = async (id: string, field: string, caller: Caller): Promise<Decision> => {
  const target = await caller.membership(requireId(id, field));
  return hasAdminRole(target?.callerRoles) ? ALLOW : deny(NOT_TENANT_ADMIN);
};

rule(MembershipService.method.updateMembership, async (request, caller) => {
  if (!request.membership) throw invalidArgument("membership", "is required");
  return adminOfTargetTenant(request.membership.id, "membership.id", caller);
});

rule(MembershipService.method.deleteMembership, (request, caller) => adminOfTargetTenant(request.id, "id", caller));

/**
 * Open to every authenticated caller, streams included: the handler itself
 * shows each caller only what it may see (src/events/event.visibility.ts).
 */
const filteredByHandler = new Set([procedureOf(EventService.method.listEvents), procedureOf(EventService.method.watchEvents)]);

/** The request as the interceptor sees it. */
export interface AuthorizationRequest {
  procedure: string;
  /** The request message of a unary RPC; undefined for streams, which have no rules. */
  message: unknown;
}

/** `em` is asked for only when a rule needs the database (never for a platform administrator). */
export async function authorize(
  principal: Principal,
  request: AuthorizationRequest,
  em: () => EntityManager,
): Promise<Decision> {
  if (principal.platformAdmin) return ALLOW;
  if (principal.userId && filteredByHandler.has(request.procedure)) return ALLOW;
  const check = rules.get(request.procedure);
  if (!principal.userId || !check || request.message === undefined) return deny(PLATFORM_ADMIN_ONLY);
  return check(request.message as MessageShape<DescMessage>, new Caller(principal.userId, em()));
}

/**
 * For ListTenants: the user whose tenants the caller may see, or undefined
 * for every tenant (platform administrators).
 */
export function tenantsVisibleTo(ctx: HandlerContext): string | undefined {
  const principal = principalOf(ctx);
  if (principal.platformAdmin) return undefined;
  if (!principal.userId) throw new ConnectError(PLATFORM_ADMIN_ONLY, Code.PermissionDenied);
  return principal.userId;
}
