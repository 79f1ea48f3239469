import type { ConnectRouter } from "@connectrpc/connect";
import { TenantService } from "../gen/tenancy/v1/tenant_pb.js";
import { MembershipService } from "../gen/tenancy/v1/membership_pb.js";
import { tenantHandler } from "./tenants/tenant.handler.js";
import { membershipHandler } from "./memberships/membership.handler.js";

/** Every RPC service this server offers; shared by the server and the tests. */
export function routes() {
  return (router: ConnectRouter) => {
    router.service(TenantService, tenantHandler);
    router.service(MembershipService, membershipHandler);
  };
}
