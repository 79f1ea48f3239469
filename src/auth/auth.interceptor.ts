import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Health } from "../../gen/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { isUuid } from "../common/ids.js";
import { requestEntityManager } from "../rpc/context.js";
import { procedureOf } from "../rpc/procedure.js";
import type { AuthConfig } from "./auth.config.js";
import { authorize } from "./policy.js";
import { kPrincipal, type Principal } from "./principal.js";
import { createTokenVerifier, KeySetUnavailableError } from "./token-verifier.js";

/**
 * Services anyone may call: load balancers and orchestrators probe health
 * without credentials, and reflection only describes the public contract.
 */
const PUBLIC_SERVICES = new Set([Health.typeName, ReflectionV1.typeName, ReflectionV1Alpha.typeName]);

/** One answer for every bad credential: why it was refused goes to the log, not to the caller. */
const UNAUTHENTICATED_MESSAGE = "a valid bearer token is required";

export interface Authenticator {
  /** The caller, or a ConnectError UNAUTHENTICATED / UNAVAILABLE. */
  authenticate(header: Headers): Promise<Principal>;
}

export function createAuthenticator(config: AuthConfig, log: Logger): Authenticator {
  if (config.mode === "none") {
    // Development: everyone is a platform administrator and says who they are.
    return {
      async authenticate(header) {
        const actor = header.get("x-actor-id")?.trim();
        return { userId: actor && isUuid(actor) ? actor.toLowerCase() : undefined, platformAdmin: true };
      },
    };
  }
  const verifier = createTokenVerifier(config);
  const refuse = (why: string) => {
    log.info({ why }, "unauthenticated request");
    return new ConnectError(UNAUTHENTICATED_MESSAGE, Code.Unauthenticated, { "www-authenticate": 'Bearer realm="tenancy"' });
  };
  return {
    async authenticate(header) {
      // x-actor-id is deliberately not read: the token alone says who calls.
      const match = /^Bearer +([^\s]+) *$/i.exec(header.get("authorization") ?? "");
      if (!match) throw refuse("no bearer token");
      try {
        return await verifier.verify(match[1]!);
      } catch (error) {
        if (error instanceof KeySetUnavailableError) {
          log.warn({ err: error.cause }, "token signing keys unavailable");
          throw new ConnectError("cannot check credentials right now, retry later", Code.Unavailable);
        }
        throw refuse((error as Error).message);
      }
    },
  };
}

/**
 * Authenticates the caller, puts the principal in the handler context, and
 * asks the policy whether the RPC is allowed. It sits inside the error
 * interceptor, so domain errors it raises (a malformed id) become statuses
 * like any handler's.
 */
export function authInterceptor(config: AuthConfig, log: Logger): Interceptor {
  const authenticator = createAuthenticator(config, log);
  return (next) => async (req) => {
    if (PUBLIC_SERVICES.has(req.service.typeName)) return next(req);
    const principal = await authenticator.authenticate(req.header);
    req.contextValues.set(kPrincipal, principal);
    const procedure = procedureOf(req.method);
    const decision = await authorize(principal, { procedure, message: req.stream ? undefined : req.message }, () =>
      requestEntityManager(req.contextValues),
    );
    if (!decision.allowed) {
      log.info({ procedure, userId: principal.userId }, "permission denied");
      throw new ConnectError(decision.message, Code.PermissionDenied);
    }
    return next(req);
  };
}
