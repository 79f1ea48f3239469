import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { EventService } from "../../../gen/tenancy/v1/event_pb.js";
import { MembershipService } from "../../../gen/tenancy/v1/membership_pb.js";
import { TenantService } from "../../../gen/tenancy/v1/tenant_pb.js";
import { TenantDirectory, type TenantDirectoryOptions } from "./directory.js";
import { bearerInterceptor, defaultRetry, retryInterceptor, sequenceInterceptor, type RetryOptions } from "./interceptors.js";

export interface TenancyClientOptions {
  /** Where the service listens, e.g. `http://tenancy:8080`. */
  baseUrl: string;
  /** `grpc` (HTTP/2, the default), `connect` or `grpc-web`. */
  protocol?: "grpc" | "connect" | "grpc-web";
  /** For `connect` and `grpc-web`: `1.1` (the default) or `2`. gRPC always uses HTTP/2. */
  httpVersion?: "1.1" | "2";
  /** For `connect` and `grpc-web`: binary protobuf (the default) or JSON. */
  useBinaryFormat?: boolean;
  /** A bearer token sent with every call (AUTH_MODE=jwt). */
  token?: string;
  /**
   * Called before every attempt of every call for the bearer token, so that
   * it can be refreshed (cache it: this is on every call's path).
   * Takes precedence over `token`.
   */
  getToken?: () => string | Promise<string>;
  /**
   * The deadline of a call that sets no `timeoutMs` of its own, retries
   * included. Default 10,000 ms; 0 for none. The service bounds its database
   * work by it.
   */
  timeoutMs?: number;
  /**
   * Retries of UNAVAILABLE: reads always, creates with a request_id (one is
   * generated per logical call when the request has none). `false` turns
   * retries (and the generated request_id) off.
   */
  retry?: RetryOptions | false;
  /** Further interceptors, applied to every attempt (innermost). */
  interceptors?: Interceptor[];
}

export interface TenancyClient {
  tenants: Client<typeof TenantService>;
  memberships: Client<typeof MembershipService>;
  events: Client<typeof EventService>;
  /**
   * The highest `tenancy-event-sequence` a write response of this client has
   * carried (0n before any): `await directory.waitFor(client.lastEventSequence)`
   * makes the directory reflect every write this client has made.
   */
  readonly lastEventSequence: bigint;
  /**
   * A new TenantDirectory over this client: it starts loading at once. Make
   * one per process and share it.
   */
  directory(options?: TenantDirectoryOptions): TenantDirectory;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

export function createTenancyClient(options: TenancyClientOptions): TenancyClient {
  let lastEventSequence = 0n;
  const interceptors: Interceptor[] = [
    sequenceInterceptor((sequence) => {
      if (sequence > lastEventSequence) lastEventSequence = sequence;
    }),
  ];
  if (options.retry !== false) interceptors.push(retryInterceptor({ ...defaultRetry, ...options.retry }));
  const token = options.token;
  const getToken = options.getToken ?? (token !== undefined ? () => token : undefined);
  if (getToken) interceptors.push(bearerInterceptor(getToken));
  interceptors.push(...(options.interceptors ?? []));

  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const common = {
    baseUrl: options.baseUrl,
    interceptors,
    ...(timeoutMs > 0 ? { defaultTimeoutMs: timeoutMs } : {}),
  };
  const protocol = options.protocol ?? "grpc";
  const transport =
    protocol === "grpc"
      ? createGrpcTransport(common)
      : (protocol === "connect" ? createConnectTransport : createGrpcWebTransport)({
          ...common,
          httpVersion: options.httpVersion ?? "1.1",
          useBinaryFormat: options.useBinaryFormat ?? true,
        });
  const client: TenancyClient = {
    tenants: createClient(TenantService, transport),
    memberships: createClient(MembershipService, transport),
    events: createClient(EventService, transport),
    get lastEventSequence() {
      return lastEventSequence;
    },
    directory: (directoryOptions) => new TenantDirectory({ tenants: client.tenants, events: client.events }, directoryOptions),
  };
  return client;
}
