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
import { actorOf, entityManager } from "../rpc/context.js";
import { callerOf, deadlineOf } from "../rpc/deadline.js";
import type { MembershipInserter } from "./membership.inserter.js";
import { oncePerRequestId, requestHash } from "../idempotency/request-id.js";
import { toMembershipMessage } from "./membership.mapper.js";
import { MembershipService } from "./membership.service.js";
import { setEventSequenceHeader, WriteReceipt } from "../events/event-context.js";

const service = (ctx: HandlerContext) => new MembershipService(entityManager(ctx), actorOf(ctx), undefined, deadlineOf(ctx));

/** A write through the service, its event sequence put in the response header. */
async function write<T>(ctx: HandlerContext, work: (service: MembershipService) => Promise<T>): Promise<T> {
  const receipt = new WriteReceipt(actorOf(ctx));
  const result = await work(new MembershipService(entityManager(ctx), actorOf(ctx), receipt, deadlineOf(ctx)));
  setEventSequenceHeader(ctx.responseHeader, receipt.eventSequence);
  return result;
}

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
    // The common case, coalesced with concurrent creates; a request_id
    // needs a transaction of the request's own, to store the response in.
    if (req.requestId === "") {
      const { membership, eventSequence } = await deps.inserter.create({ tenantId, userId, roles }, actorOf(ctx), callerOf(ctx));
      setEventSequenceHeader(ctx.responseHeader, eventSequence);
      return toMembershipMessage(membership);
    }
    const key = { requestId: req.requestId, method: "CreateMembership", hash: requestHash(req) };
    const receipt = new WriteReceipt(actorOf(ctx), req.requestId);
    const created = await oncePerRequestId(entityManager(ctx), deadlineOf(ctx), key, MembershipSchema, receipt, async (em) =>
      toMembershipMessage(await new MembershipService(em, actorOf(ctx), receipt).create({ tenantId, userId, roles })),
    );
    setEventSequenceHeader(ctx.responseHeader, receipt.eventSequence);
    return created;
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
    const input = req.membership;
    if (!input) throw invalidArgument("membership", "is required");
    const membership = await write(ctx, (memberships) => memberships.update({
      id: input.id,
      roles: input.roles,
      etag: input.etag,
      paths: req.updateMask?.paths ?? [],
    }));
    return toMembershipMessage(membership);
  },

  async deleteMembership(req, ctx) {
    await write(ctx, (memberships) => memberships.delete(req.id));
    return create(EmptySchema);
  },
});
