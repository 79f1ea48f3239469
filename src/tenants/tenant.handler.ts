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
import { actorOf, entityManager } from "../rpc/context.js";
import { callerOf, deadlineOf } from "../rpc/deadline.js";
import { setEventSequenceHeader, WriteReceipt } from "../events/event-context.js";
import type { TenantInserter } from "./tenant.inserter.js";
import { toTenantMessage } from "./tenant.mapper.js";
import { defaultTenantRules, TenantReads, TenantService, type RequestedState, type TenantRules } from "./tenant.service.js";
import type { TenantLoader } from "./tenant.loader.js";
import type { Caller } from "../database/batcher.js";
import type { ParamsSchemaRegistry } from "../params-schemas/params-schema.registry.js";

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
  paramsSchemas: ParamsSchemaRegistry;
  rules?: TenantRules;
}

/**
 * The caller of a coalesced read, when it has a deadline. Without one, a
 * read stays in its batch even if cancelled (a key more in the query costs
 * less than the signal it would take on the gRPC fast path).
 */
function readerOf(ctx: HandlerContext): Caller | undefined {
  return deadlineOf(ctx) === undefined ? undefined : callerOf(ctx);
}

/** Thin: decode the request, call the service, map the entity to the wire. */
export function tenantHandler(deps: TenantHandlerDeps): ServiceImpl<typeof TenantServiceDesc> {
  const rules = deps.rules ?? defaultTenantRules;
  const service = (ctx: HandlerContext, receipt?: WriteReceipt) =>
    new TenantService(entityManager(ctx), deps.paramsSchemas, rules, receipt, deadlineOf(ctx));
  /** A write through the service, its event sequence put in the response header. */
  const write = async <T>(ctx: HandlerContext, work: (service: TenantService) => Promise<T>): Promise<T> => {
    const receipt = new WriteReceipt(actorOf(ctx));
    const result = await work(service(ctx, receipt));
    setEventSequenceHeader(ctx.responseHeader, receipt.eventSequence);
    return result;
  };
  const reads = new TenantReads(deps.loader);
  return {
    async createTenant(req, ctx) {
      if (!req.tenant) throw invalidArgument("tenant", "is required");
      checkRequestId(req.requestId);
      const { tenant: input } = req;
      const state = requestedState(input.state, "tenant.state");
      const fields = { name: input.name, domain: input.domain, params: input.params, state, paramsSchema: input.paramsSchema };
      // The common case, coalesced with concurrent creates; a request_id
      // needs a transaction of the request's own, to store the response in.
      if (req.requestId === "") {
        const { tenant, eventSequence } = await deps.inserter.create(fields, actorOf(ctx), callerOf(ctx));
        setEventSequenceHeader(ctx.responseHeader, eventSequence);
        return toTenantMessage(tenant);
      }
      const key = { requestId: req.requestId, method: "CreateTenant", hash: requestHash(req) };
      const receipt = new WriteReceipt(actorOf(ctx), req.requestId);
      const created = await oncePerRequestId(entityManager(ctx), deadlineOf(ctx), key, TenantSchema, receipt, async (em) =>
        toTenantMessage(await new TenantService(em, deps.paramsSchemas, rules, receipt).create(fields)),
      );
      setEventSequenceHeader(ctx.responseHeader, receipt.eventSequence);
      return created;
    },

    async getTenant(req, ctx) {
      return toTenantMessage(await reads.get(req.id, readerOf(ctx)));
    },

    async lookupTenant(req, ctx) {
      switch (req.key.case) {
        case "domain":
          return toTenantMessage(await reads.lookupByDomain(req.key.value, readerOf(ctx)));
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
      const input = req.tenant;
      if (!input) throw invalidArgument("tenant", "is required");
      const tenant = await write(ctx, (tenants) => tenants.update({
        id: input.id,
        name: input.name,
        domain: input.domain,
        params: input.params,
        // Validated against the mask by the service, which names the field.
        state: input.state === State.DELETED ? "DELETED" : requestedState(input.state, "tenant.state"),
        etag: input.etag,
        paramsSchema: input.paramsSchema,
        paths: req.updateMask?.paths ?? [],
      }));
      return toTenantMessage(tenant);
    },

    async deleteTenant(req, ctx) {
      return toTenantMessage(await write(ctx, (tenants) => tenants.delete(req)));
    },

    async undeleteTenant(req, ctx) {
      return toTenantMessage(await write(ctx, (tenants) => tenants.undelete(req)));
    },

    async purgeTenant(req, ctx) {
      await write(ctx, (tenants) => tenants.purge(req));
      return create(EmptySchema);
    },
  };
}
