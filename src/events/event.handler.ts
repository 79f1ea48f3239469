import type { ServiceImpl } from "@connectrpc/connect";
import type { EventService as EventServiceDesc } from "../../gen/tenancy/v1/event_pb.js";
import { principalOf } from "../auth/principal.js";
import { entityManager } from "../rpc/context.js";
import type { EventHub } from "./event.hub.js";
import { parseRpcContentType } from "../rpc/request-reader.js";
import { EventService, watchEvents, type WatchOptions } from "./event.service.js";

export interface EventHandlerDeps {
  hub: EventHub;
  watch: WatchOptions;
}

/** Thin: the audit log through the service, the watch through the hub. */
export function eventHandler(deps: EventHandlerDeps): ServiceImpl<typeof EventServiceDesc> {
  return {
    listEvents(req, ctx) {
      return new EventService(entityManager(ctx)).list(req, principalOf(ctx));
    },

    watchEvents(req, ctx) {
      const encoding = parseRpcContentType(ctx.requestHeader.get("content-type"))?.binary === false ? "json" : "binary";
      return watchEvents(deps.hub, () => entityManager(ctx), req, principalOf(ctx), ctx.signal, deps.watch, encoding);
    },
  };
}
