import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  ListTenantsResponseSchema,
  Tenant_State as State,
  TenantSchema,
  type TenantService as TenantServiceDesc,
} from "../../gen/tenancy/v1/tenant_pb.js";
import { oncePerRequestId, requestHash } from "../idempotency/request-id.js";
import { invalidArgument } from "../common/errors.js";
import { checkRequestId } from "../common/ids.js";
import { tenantsVisibleTo } from "../auth/policy.js";
import { entityManager, inTransaction } from "../rpc/context.js";
import type { TenantInserter } from "./tenant.inserter.js";
import { toTenantMessage } from "./tenant.mapper.js";
import { defaultTenantRules, TenantReads, TenantService, type RequestedState, type TenantRules } from "./tenant.service.js";
import type { TenantLoader } from "./tenant.loader.js";
import type { Deadline } from "../database/batcher.js";

function requestedState(state: State, field: string): RequestedState {
  switch (state) {
    case State.STATE_UNSPECIFIED:
      return undefined;
    case State.ACTIVE:
      return "ACTIVE";
    case State.SUSPENDED:
      return "SUSPENDED";
    default:
      throw invalidArgument(field, "must be ACTIVE or SUSPENDED (use DeleteTenant to delete)");
  }
}

export interface TenantHandlerDeps {
  loader: TenantLoader;
  inserter: TenantInserter;
  rules?: TenantRules;
}

/** The caller's deadline, for reads that do not run in the deadline's transaction. */
function deadlineOf(ctx: HandlerContext): Deadline | undefined {
  const timeoutMs = ctx.timeoutMs();
  return timeoutMs === undefined ? undefined : { signal: ctx.signal, timeoutMs };
}

/** Thin: decode the request, call the service, map the entity to the wire. */
export function tenantHandler(deps: TenantHandlerDeps): ServiceImpl<typeof TenantServiceDesc> {
  const rules = deps.rules ?? defaultTenantRules;
  const service = (ctx: HandlerContext) => new TenantService(entityManager(ctx), rules);
  const reads = new TenantReads(deps.loader);
  return {
    async createTenant(req, ctx) {
      if (!req.tenant) throw invalidArgument("tenant", "is required");
      checkRequestId(req.requestId);
      const { tenant: input } = req;
      const state = requestedState(input.state, "tenant.state");
      const fields = { name: input.name, domain: input.domain, params: input.params, state };
      // The common case, coalesced with concurrent creates; a request_id or a
      // deadline needs the request's own transaction.
      if (req.requestId === "" && !inTransaction(ctx)) return toTenantMessage(await deps.inserter.create(fields));
      const key = { requestId: req.requestId, method: "CreateTenant", hash: req.requestId ? requestHash(req) : "" };
      return oncePerRequestId(entityManager(ctx), key, TenantSchema, async (em) =>
        toTenantMessage(await new TenantService(em, rules).create(fields)),
      );
    },

    async getTenant(req, ctx) {
      return toTenantMessage(await reads.get(req.id, deadlineOf(ctx)));
    },

    async lookupTenant(req, ctx) {
      switch (req.key.case) {
        case "domain":
          return toTenantMessage(await reads.lookupByDomain(req.key.value, deadlineOf(ctx)));
        case "name":
          return toTenantMessage(await service(ctx).lookupByName(req.key.value));
        default:
          throw invalidArgument("key", "set either domain or name");
      }
    },

    async listTenants(req, ctx) {
      const page = await service(ctx).list(req, tenantsVisibleTo(ctx));
      return create(ListTenantsResponseSchema, {
        tenants: page.tenants.map(toTenantMessage),
        nextPageToken: page.nextPageToken,
        totalSize: page.totalSize,
      });
    },

    async updateTenant(req, ctx) {
      if (!req.tenant) throw invalidArgument("tenant", "is required");
      const tenant = await service(ctx).update({
        id: req.tenant.id,
        name: req.tenant.name,
        domain: req.tenant.domain,
        params: req.tenant.params,
        // Validated against the mask by the service, which names the field.
        state: req.tenant.state === State.DELETED ? "DELETED" : requestedState(req.tenant.state, "tenant.state"),
        etag: req.tenant.etag,
        paths: req.updateMask?.paths ?? [],
      });
      return toTenantMessage(tenant);
    },

    async deleteTenant(req, ctx) {
      return toTenantMessage(await service(ctx).delete(req));
    },

    async undeleteTenant(req, ctx) {
      return toTenantMessage(await service(ctx).undelete(req));
    },

    async purgeTenant(req, ctx) {
      await service(ctx).purge(req);
      return create(EmptySchema);
    },
  };
}
