import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  CheckParamsSchemaResponseSchema,
  ListParamsSchemasResponseSchema,
  ParamsSchemaSchema,
  ParamsSchemaView,
  RebindParamsSchemaResponseSchema,
  type ParamsSchemaService as ParamsSchemaServiceDesc,
} from "../../gen/tenancy/v1/params_schema_pb.js";
import { checkRequestId } from "../common/ids.js";
import { oncePerRequestId, requestHash } from "../idempotency/request-id.js";
import type { EntityManager } from "@mikro-orm/postgresql";
import { actorOf, entityManager } from "../rpc/context.js";
import { deadlineOf } from "../rpc/deadline.js";
import { setEventSequenceHeader, WriteReceipt } from "../events/event-context.js";
import { formatBinding } from "./params-schema.binding.js";
import type { CompiledParamsSchema } from "./params-schema.compiler.js";
import { toParamsSchemaMessage } from "./params-schema.mapper.js";
import type { ParamsSchemaRegistry } from "./params-schema.registry.js";
import { paramsPath, ParamsSchemaService } from "./params-schema.service.js";

/** Thin: decode the request, call the service, map to the wire. */
export function paramsSchemaHandler(deps: { registry: ParamsSchemaRegistry }): ServiceImpl<typeof ParamsSchemaServiceDesc> {
  const service = (ctx: HandlerContext) => new ParamsSchemaService(entityManager(ctx), deps.registry, undefined, deadlineOf(ctx));
  return {
    async createParamsSchemaVersion(req, ctx) {
      checkRequestId(req.requestId);
      let registered: { name: string; version: number; compiled: CompiledParamsSchema } | undefined;
      const receipt = new WriteReceipt(actorOf(ctx), req.requestId || undefined);
      const register = async (em: EntityManager) => {
        const { stored, compiled } = await new ParamsSchemaService(em, deps.registry, receipt, deadlineOf(ctx)).create(req);
        registered = { name: stored.name, version: stored.version, compiled };
        return toParamsSchemaMessage(stored);
      };
      const response =
        req.requestId === ""
          ? await register(entityManager(ctx))
          : await oncePerRequestId(
              entityManager(ctx),
              deadlineOf(ctx),
              { requestId: req.requestId, method: "CreateParamsSchemaVersion", hash: requestHash(req) },
              ParamsSchemaSchema,
              receipt,
              register,
            );
      // Committed: its first use needs no compile.
      if (registered) deps.registry.remember(registered, registered.compiled);
      setEventSequenceHeader(ctx.responseHeader, receipt.eventSequence);
      return response;
    },

    async getParamsSchema(req, ctx) {
      return toParamsSchemaMessage(await service(ctx).get(req));
    },

    async listParamsSchemas(req, ctx) {
      const page = await service(ctx).list({ ...req, withSchema: req.view === ParamsSchemaView.FULL });
      return create(ListParamsSchemasResponseSchema, {
        paramsSchemas: page.schemas.map(toParamsSchemaMessage),
        nextPageToken: page.nextPageToken,
      });
    },

    async checkParamsSchema(req, ctx) {
      const result = await service(ctx).check(req);
      return create(CheckParamsSchemaResponseSchema, {
        failures: result.failures.map((f) => ({
          tenantId: f.tenantId,
          tenantName: f.tenantName,
          paramsSchema: f.binding ? formatBinding(f.binding) : "",
          violations: f.violations.map((v) => ({ field: paramsPath(v), description: v.description })),
        })),
        nextPageToken: result.nextPageToken,
        checkedCount: result.checkedCount,
      });
    },

    async rebindParamsSchema(req, ctx) {
      const receipt = new WriteReceipt(actorOf(ctx));
      const result = await new ParamsSchemaService(entityManager(ctx), deps.registry, receipt, deadlineOf(ctx)).rebind(req);
      setEventSequenceHeader(ctx.responseHeader, receipt.eventSequence);
      return create(RebindParamsSchemaResponseSchema, { matchedCount: result.matched, reboundCount: result.rebound });
    },
  };
}
