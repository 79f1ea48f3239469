import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  TenantSchema as TenantMessageSchema,
  Tenant_State as State,
  type Tenant as TenantMessage,
} from "../../gen/tenancy/v1/tenant_pb.js";
import type { Tenant, TenantState } from "./tenant.entity.js";

const toWireState: Record<TenantState, State> = {
  ACTIVE: State.ACTIVE,
  SUSPENDED: State.SUSPENDED,
  DELETED: State.DELETED,
};

/** `name@version` as Tenant.params_schema carries it; empty for free-form params. */
export function paramsSchemaBinding(tenant: Pick<Tenant, "paramsSchemaName" | "paramsSchemaVersion">): string {
  return tenant.paramsSchemaName === null ? "" : `${tenant.paramsSchemaName}@${tenant.paramsSchemaVersion}`;
}

/** The etag is the row version, quoted as in HTTP so nobody mistakes it for a count. */
export function tenantEtag(tenant: Pick<Tenant, "version">): string {
  return `"${tenant.version}"`;
}

export function toTenantMessage(tenant: Tenant): TenantMessage {
  return create(TenantMessageSchema, {
    id: tenant.id,
    name: tenant.name,
    domain: tenant.domain,
    params: (tenant.params ?? {}) as JsonObject,
    createTime: timestampFromDate(tenant.createdAt),
    updateTime: timestampFromDate(tenant.updatedAt),
    etag: tenantEtag(tenant),
    state: toWireState[tenant.state],
    deleteTime: tenant.deletedAt ? timestampFromDate(tenant.deletedAt) : undefined,
    purgeTime: tenant.purgeAt ? timestampFromDate(tenant.purgeAt) : undefined,
    paramsSchema: paramsSchemaBinding(tenant),
  });
}
