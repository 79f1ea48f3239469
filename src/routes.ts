import { file_tenancy_v1_tenant, TenantService } from "../gen/tenancy/v1/tenant_pb.js";
import { file_tenancy_v1_membership, MembershipService } from "../gen/tenancy/v1/membership_pb.js";
import { EventService, file_tenancy_v1_event } from "../gen/tenancy/v1/event_pb.js";
import { eventHandler } from "./events/event.handler.js";
import type { EventHub } from "./events/event.hub.js";
import type { WatchOptions } from "./events/event.service.js";
import { file_tenancy_v1_params_schema, ParamsSchemaService } from "../gen/tenancy/v1/params_schema_pb.js";
import { paramsSchemaHandler } from "./params-schemas/params-schema.handler.js";
import { file_health_v1_health, Health } from "../gen/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { file_grpc_reflection_v1alpha_reflection } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { tenantHandler } from "./tenants/tenant.handler.js";
import { answeredFromCache } from "./cache/tenant-caching.js";
import type { TenantRules } from "./tenants/tenant.service.js";
import type { TenantLoader } from "./tenants/tenant.loader.js";
import type { TenantInserter } from "./tenants/tenant.inserter.js";
import type { MembershipInserter } from "./memberships/membership.inserter.js";
import { membershipHandler } from "./memberships/membership.handler.js";
import { healthHandler } from "./health/health.handler.js";
import type { HealthMonitor } from "./health/health.monitor.js";
import { reflectionServices } from "./reflection/reflection.routes.js";
import { serviceRegistration, type ServiceRegistration } from "./rpc/rpc-handler.js";
import type { ParamsSchemaRegistry } from "./params-schemas/params-schema.registry.js";

export interface RouteDeps {
  health: HealthMonitor;
  /** Shared by every request (see tenant.loader.ts and tenant.inserter.ts). */
  tenantLoader: TenantLoader;
  tenantInserter: TenantInserter;
  membershipInserter: MembershipInserter;
  /** The compiled params schemas of this process. */
  paramsSchemas: ParamsSchemaRegistry;
  tenantRules?: TenantRules;
  /** The change feed's live side (src/events/). */
  eventHub: EventHub;
  watch: WatchOptions;
}

/**
 * Every RPC service this server offers, with its implementation: given as
 * such to Connect's router and to the gRPC fast path (src/server.ts).
 */
export function services(deps: RouteDeps): ServiceRegistration[] {
  return [
    serviceRegistration(
      TenantService,
      answeredFromCache(tenantHandler({ loader: deps.tenantLoader, inserter: deps.tenantInserter, paramsSchemas: deps.paramsSchemas, rules: deps.tenantRules })),
    ),
    serviceRegistration(MembershipService, membershipHandler({ inserter: deps.membershipInserter })),
    serviceRegistration(EventService, eventHandler({ hub: deps.eventHub, watch: deps.watch })),
    serviceRegistration(ParamsSchemaService, paramsSchemaHandler({ registry: deps.paramsSchemas })),
    serviceRegistration(
      Health,
      healthHandler(deps.health, [TenantService.typeName, MembershipService.typeName, EventService.typeName, ParamsSchemaService.typeName]),
    ),
    ...reflectionServices([
      file_tenancy_v1_tenant,
      file_tenancy_v1_membership,
      file_tenancy_v1_event,
      file_tenancy_v1_params_schema,
      file_health_v1_health,
      file_grpc_reflection_v1_reflection,
      file_grpc_reflection_v1alpha_reflection,
    ]),
  ];
}
