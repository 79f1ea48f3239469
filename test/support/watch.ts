import { ConnectError } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Event, TenancyClients, WatchEventsRequestSchema, WatchEventsResponse } from "../../src/client.js";

/**
 * A WatchEvents stream read in the background: what it received so far,
 * and ways to wait for more.
 */
export class Watcher {
  readonly events: Event[] = [];
  readonly progress: bigint[] = [];
  error: ConnectError | undefined;
  ended = false;
  private readonly controller = new AbortController();
  private waiters: Array<() => void> = [];
  readonly done: Promise<void>;

  constructor(clients: TenancyClients, request: MessageInitShape<typeof WatchEventsRequestSchema>, headers?: Record<string, string>) {
    this.done = this.read(clients.events.watchEvents(request, { signal: this.controller.signal, headers }));
  }

  private async read(stream: AsyncIterable<WatchEventsResponse>): Promise<void> {
    try {
      for await (const message of stream) {
        if (message.kind.case === "event") this.events.push(message.kind.value);
        if (message.kind.case === "progress") this.progress.push(message.kind.value.sequence);
        this.wake();
      }
    } catch (error) {
      this.error = ConnectError.from(error);
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  private wake(): void {
    for (const resolve of this.waiters.splice(0)) resolve();
  }

  /** The last sequence received, as event or progress. */
  get position(): bigint {
    const last = this.events[this.events.length - 1]?.sequence ?? 0n;
    const progress = this.progress[this.progress.length - 1] ?? 0n;
    return last > progress ? last : progress;
  }

  /** Resolves when `condition` holds, or rejects after `timeoutMs` (a hung stream fails the test instead of hanging it). */
  async until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (this.ended && !condition()) throw new Error(`the stream ended (${this.error?.message ?? "ok"}) before the condition held`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timed out waiting on the watch stream");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until an event with this sequence (or a later position) arrived. */
  seen(sequence: bigint, timeoutMs?: number): Promise<void> {
    return this.until(() => this.position >= sequence, timeoutMs);
  }

  close(): Promise<void> {
    this.controller.abort();
    return this.done;
  }
}
