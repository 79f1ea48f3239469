import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  ListTenantsResponseSchema,
  TenantSchema,
  type TenantService as TenantServiceDesc,
} from "../../gen/tenancy/v1/tenant_pb.js";
import { oncePerRequestId, requestHash } from "../idempotency/request-id.js";
import { invalidArgument } from "../common/errors.js";
import { checkRequestId } from "../common/ids.js";
import { entityManager } from "../rpc/context.js";
import { toTenantMessage } from "./tenant.mapper.js";
import { TenantService } from "./tenant.service.js";

const service = (ctx: HandlerContext) => new TenantService(entityManager(ctx));

/** Thin: decode the request, call the service, map the entity to the wire. */
export const tenantHandler: ServiceImpl<typeof TenantServiceDesc> = {
  async createTenant(req, ctx) {
    if (!req.tenant) throw invalidArgument("tenant", "is required");
    checkRequestId(req.requestId);
    const { tenant: input } = req;
    const key = { requestId: req.requestId, method: "CreateTenant", hash: requestHash(req) };
    return oncePerRequestId(entityManager(ctx), key, TenantSchema, async (em) =>
      toTenantMessage(await new TenantService(em).create({ name: input.name, domain: input.domain, params: input.params })),
    );
  },

  async getTenant(req, ctx) {
    return toTenantMessage(await service(ctx).get(req.id));
  },

  async lookupTenant(req, ctx) {
    switch (req.key.case) {
      case "domain":
        return toTenantMessage(await service(ctx).lookupByDomain(req.key.value));
      case "name":
        return toTenantMessage(await service(ctx).lookupByName(req.key.value));
      default:
        throw invalidArgument("key", "set either domain or name");
    }
  },

  async listTenants(req, ctx) {
    const page = await service(ctx).list(req);
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
      etag: req.tenant.etag,
      paths: req.updateMask?.paths ?? [],
    });
    return toTenantMessage(tenant);
  },

  async deleteTenant(req, ctx) {
    return toTenantMessage(await service(ctx).delete(req));
  },

  async undeleteTenant() {
    throw new ConnectError("not implemented yet", Code.Unimplemented);
  },

  async purgeTenant() {
    throw new ConnectError("not implemented yet", Code.Unimplemented);
  },
};
