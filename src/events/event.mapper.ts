import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { EventSchema, type Event } from "../../gen/tenancy/v1/event_pb.js";
import { tenantFromRow } from "../tenants/tenant.repository.js";
import { toTenantMessage } from "../tenants/tenant.mapper.js";
import { membershipFromRow } from "../memberships/membership.repository.js";
import { toMembershipMessage } from "../memberships/membership.mapper.js";
import type { EventRow } from "./event.repository.js";
import { paramsSchemaFromRow } from "../params-schemas/params-schema.repository.js";
import { toParamsSchemaMessage } from "../params-schemas/params-schema.mapper.js";

/** Timestamps inside `resource` are JSON text (to_jsonb of the row), with microseconds. */
function jsonDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(String(value));
}

/**
 * An "Events" row as the wire's Event. The resource is the row as the
 * trigger saw it (to_jsonb: the column names as keys), mapped by the same
 * row mappers as the reads.
 */
export function toEventMessage(row: EventRow, date: (value: unknown) => Date): Event {
  const resource = row.type.startsWith("membership.")
    ? { case: "membership" as const, value: toMembershipMessage(membershipFromRow(row.resource, jsonDate)) }
    : row.type.startsWith("tenant.")
      ? { case: "tenant" as const, value: toTenantMessage(tenantFromRow(row.resource, jsonDate)) }
      : row.type.startsWith("params_schema.")
        ? { case: "paramsSchema" as const, value: toParamsSchemaMessage(paramsSchemaFromRow(row.resource, jsonDate)) }
        : { case: undefined };
  return create(EventSchema, {
    sequence: BigInt(row.sequence),
    id: row.id,
    time: timestampFromDate(date(row.time)),
    type: row.type,
    tenantId: row.tenant_id ?? "",
    actor: row.actor ?? "",
    requestId: row.request_id ?? "",
    resource,
    changedFields: row.changed_fields.length > 0 ? create(FieldMaskSchema, { paths: row.changed_fields }) : undefined,
  });
}
