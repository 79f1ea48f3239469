import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Health,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/health/v1/health_pb.js";
import type { HealthMonitor, ServingState } from "./health.monitor.js";

function toStatus(state: ServingState): Status {
  return state === "SERVING" ? Status.SERVING : Status.NOT_SERVING;
}

/**
 * grpc.health.v1.Health for the server as a whole ("") and for each of
 * `services`: all of them are as healthy as the database. Unknown names are
 * NOT_FOUND on Check; on Watch they get SERVICE_UNKNOWN, as the gRPC health
 * protocol asks, since a service may appear later.
 */
export function healthHandler(monitor: HealthMonitor, services: readonly string[]): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services]);
  return {
    check(req) {
      if (!known.has(req.service)) throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      return create(HealthCheckResponseSchema, { status: toStatus(monitor.state) });
    },

    list() {
      const status = create(HealthCheckResponseSchema, { status: toStatus(monitor.state) });
      return create(HealthListResponseSchema, { statuses: Object.fromEntries([...known].map((name) => [name, status])) });
    },

    async *watch(req, ctx) {
      if (!known.has(req.service)) {
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        if (!monitor.isStopped) {
          await new Promise<void>((resolve) => {
            ctx.signal.addEventListener("abort", () => resolve(), { once: true });
            monitor.once("stopped", resolve);
          });
        }
        return;
      }
      // Queue changes so that none is lost between two yields.
      const pending: ServingState[] = [monitor.state];
      let wake: (() => void) | undefined;
      const onChange = (state: ServingState) => {
        pending.push(state);
        wake?.();
      };
      const onAbort = () => wake?.();
      monitor.on("change", onChange);
      monitor.on("stopped", onAbort);
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        let last: ServingState | undefined;
        while (!ctx.signal.aborted) {
          const state = pending.shift();
          if (state === undefined) {
            if (monitor.isStopped) break; // the server is shutting down: end the stream
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          if (state === last) continue;
          last = state;
          yield create(HealthCheckResponseSchema, { status: toStatus(state) });
        }
      } finally {
        monitor.off("change", onChange);
        monitor.off("stopped", onAbort);
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  };
}
