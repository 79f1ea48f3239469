/**
 * Plain typed clients, without the deadline, retries or generated
 * request_ids of @tenancy/client (clients/node): what the tests and the
 * benchmark need to see the service's own answers. Other services install
 * @tenancy/client.
 */
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { TenantService } from "../gen/tenancy/v1/tenant_pb.js";
import { MembershipService } from "../gen/tenancy/v1/membership_pb.js";
import { EventService } from "../gen/tenancy/v1/event_pb.js";
import { ParamsSchemaService } from "../gen/tenancy/v1/params_schema_pb.js";

export * from "../gen/tenancy/v1/tenant_pb.js";
export * from "../gen/tenancy/v1/membership_pb.js";
export * from "../gen/tenancy/v1/event_pb.js";
export * from "../gen/tenancy/v1/params_schema_pb.js";
export { BadRequestSchema, ErrorInfoSchema, PreconditionFailureSchema } from "../gen/google/rpc/error_details_pb.js";

export interface TenancyClientOptions {
  /** Where the service listens, e.g. `http://localhost:8080`. */
  baseUrl: string;
  /** `grpc` (HTTP/2, the default), `connect` or `grpc-web`. */
  protocol?: "grpc" | "connect" | "grpc-web";
  /** For `connect` and `grpc-web`: `1.1` (default) or `2`. gRPC always uses HTTP/2. */
  httpVersion?: "1.1" | "2";
  /** Binary protobuf (default) or JSON, for `connect` and `grpc-web`. */
  useBinaryFormat?: boolean;
  interceptors?: Interceptor[];
  /**
   * For an `https://` baseUrl: certificates (PEM) to trust besides the
   * system's, such as a private CA or a self-signed certificate.
   */
  ca?: string | Buffer;
}

export interface TenancyClients {
  tenants: Client<typeof TenantService>;
  memberships: Client<typeof MembershipService>;
  events: Client<typeof EventService>;
  paramsSchemas: Client<typeof ParamsSchemaService>;
}

export function createTenancyClients(options: TenancyClientOptions): TenancyClients {
  const common = {
    baseUrl: options.baseUrl,
    interceptors: options.interceptors ?? [],
    ...(options.ca !== undefined ? { nodeOptions: { ca: options.ca } } : {}),
  };
  const transport =
    (options.protocol ?? "grpc") === "grpc"
      ? createGrpcTransport({ ...common })
      : (options.protocol === "connect" ? createConnectTransport : createGrpcWebTransport)({
          ...common,
          httpVersion: options.httpVersion ?? "1.1",
          useBinaryFormat: options.useBinaryFormat ?? true,
        });
  return {
    tenants: createClient(TenantService, transport),
    memberships: createClient(MembershipService, transport),
    events: createClient(EventService, transport),
    paramsSchemas: createClient(ParamsSchemaService, transport),
  };
}
