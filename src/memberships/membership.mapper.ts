import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  MembershipSchema as MembershipMessageSchema,
  type Membership as MembershipMessage,
} from "../../gen/tenancy/v1/membership_pb.js";
import type { Membership } from "./membership.entity.js";

/** The etag is the row version, quoted as for tenants. */
export function membershipEtag(membership: Pick<Membership, "version">): string {
  return `"${membership.version}"`;
}

export function toMembershipMessage(membership: Membership): MembershipMessage {
  return create(MembershipMessageSchema, {
    id: membership.id,
    tenantId: membership.tenantId,
    userId: membership.userId,
    createdBy: membership.createdBy ?? "",
    updatedBy: membership.updatedBy ?? "",
    createTime: timestampFromDate(membership.createdAt),
    updateTime: timestampFromDate(membership.updatedAt),
    roles: membership.roles,
    etag: membershipEtag(membership),
  });
}
