import { create } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  ListMembershipsResponseSchema,
  MembershipSchema,
  type MembershipService as MembershipServiceDesc,
} from "../../gen/tenancy/v1/membership_pb.js";
import { invalidArgument } from "../common/errors.js";
import { checkRequestId } from "../common/ids.js";
import { actorOf, entityManager, inTransaction } from "../rpc/context.js";
import type { MembershipInserter } from "./membership.inserter.js";
import { oncePerRequestId, requestHash } from "../idempotency/request-id.js";
import { toMembershipMessage } from "./membership.mapper.js";
import { MembershipService } from "./membership.service.js";

const service = (ctx: HandlerContext) => new MembershipService(entityManager(ctx), actorOf(ctx));

export interface MembershipHandlerDeps {
  inserter: MembershipInserter;
}

/** Thin: decode the request, call the service, map the entity to the wire. */
export const membershipHandler = (deps: MembershipHandlerDeps): ServiceImpl<typeof MembershipServiceDesc> => ({
  async createMembership(req, ctx) {
    if (!req.membership) throw invalidArgument("membership", "is required");
    checkRequestId(req.requestId);
    // created_by / updated_by come from the caller's identity, never from the message.
    const { tenantId, userId, roles } = req.membership;
    // The common case, coalesced with concurrent creates; a request_id or a
    // deadline needs the request's own transaction.
    if (req.requestId === "" && !inTransaction(ctx)) {
      return toMembershipMessage(await deps.inserter.create({ tenantId, userId, roles }, actorOf(ctx)));
    }
    const key = { requestId: req.requestId, method: "CreateMembership", hash: req.requestId ? requestHash(req) : "" };
    return oncePerRequestId(entityManager(ctx), key, MembershipSchema, async (em) =>
      toMembershipMessage(await new MembershipService(em, actorOf(ctx)).create({ tenantId, userId, roles })),
    );
  },

  async getMembership(req, ctx) {
    return toMembershipMessage(await service(ctx).get(req.id));
  },

  async listMemberships(req, ctx) {
    const page = await service(ctx).list(req);
    return create(ListMembershipsResponseSchema, {
      memberships: page.memberships.map(toMembershipMessage),
      nextPageToken: page.nextPageToken,
      totalSize: page.totalSize,
    });
  },

  async updateMembership(req, ctx) {
    if (!req.membership) throw invalidArgument("membership", "is required");
    const membership = await service(ctx).update({
      id: req.membership.id,
      roles: req.membership.roles,
      etag: req.membership.etag,
      paths: req.updateMask?.paths ?? [],
    });
    return toMembershipMessage(membership);
  },

  async deleteMembership(req, ctx) {
    await service(ctx).delete(req.id);
    return create(EmptySchema);
  },
});
