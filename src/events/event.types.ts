/** Every event type the feed produces (see proto/tenancy/v1/event.proto). */
export const EVENT_TYPES = [
  "tenant.created",
  "tenant.updated",
  "tenant.suspended",
  "tenant.activated",
  "tenant.deleted",
  "tenant.undeleted",
  "tenant.purged",
  "membership.created",
  "membership.updated",
  "membership.deleted",
  "params_schema.created",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

const known = new Set<string>(EVENT_TYPES);

export function isEventType(type: string): type is EventType {
  return known.has(type);
}
