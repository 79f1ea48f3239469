import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { useTransport } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { EventService, type Event } from "../../gen/tenancy/v1/event_pb.js";

export type FeedStatus = "connecting" | "live" | "unavailable";

/** Stream errors that retrying will not cure. */
const FINAL = new Set([Code.Unimplemented, Code.PermissionDenied, Code.InvalidArgument, Code.Unauthenticated, Code.NotFound]);

const MAX_BACKOFF_MS = 30_000;

function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/**
 * Follows the tenant's changes with WatchEvents while its page is open:
 * every event refreshes what the page shows (the tenant, its members, its
 * history), so a change made by anyone else appears without a reload. A
 * dropped stream is resumed after the last sequence seen, with backoff.
 */
export function useTenantFeed(tenantId: string): { status: FeedStatus; lastEvent: Event | undefined } {
  const transport = useTransport();
  const queryClient = useQueryClient();
  const [status, setStatus] = useState<FeedStatus>("connecting");
  const [lastEvent, setLastEvent] = useState<Event>();
  const refresh = useRef(() => {});
  refresh.current = () => void queryClient.invalidateQueries({ queryKey: ["connect-query"] });

  useEffect(() => {
    const abort = new AbortController();
    const events = createClient(EventService, transport);
    let after: bigint | undefined;
    (async () => {
      let backoff = 1000;
      while (!abort.signal.aborted) {
        setStatus("connecting");
        try {
          const request = after === undefined ? { tenantId, startNow: true } : { tenantId, afterSequence: after };
          for await (const message of events.watchEvents(request, { signal: abort.signal })) {
            setStatus("live");
            backoff = 1000;
            if (message.kind.case === "progress") after = message.kind.value.sequence;
            if (message.kind.case === "event") {
              after = message.kind.value.sequence;
              setLastEvent(message.kind.value);
              refresh.current();
            }
          }
        } catch (error) {
          if (abort.signal.aborted) return;
          const connectError = ConnectError.from(error);
          if (FINAL.has(connectError.code)) {
            setStatus("unavailable");
            return;
          }
          // EVENTS_EXPIRED: what was missed is gone; reread everything and follow from now.
          if (connectError.code === Code.FailedPrecondition) {
            after = undefined;
            refresh.current();
          }
        }
        await wait(backoff, abort.signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    })();
    return () => abort.abort();
  }, [tenantId, transport]);

  return { status, lastEvent };
}
