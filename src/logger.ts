import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Structured JSON logs, on stdout unless told otherwise (see stdout()).
 * pino flushes what is left, synchronously, when the process exits (also
 * through process.exit, as the shutdown does).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { service: "tenancy" }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? stdout());
}

/** Lines are written in chunks of at least this many bytes, or when FLUSH_MS has passed. */
const CHUNK_BYTES = 4096;
const FLUSH_MS = 100;

/**
 * stdout, written asynchronously and in chunks: one access-log line per RPC
 * written on its own was a write(2) per request, about 5% of the service's
 * CPU on the GetTenant path (docs/performance.md). A line waits at most
 * FLUSH_MS for its chunk to fill.
 */
function stdout(): pino.DestinationStream {
  const destination = pino.destination({ dest: 1, sync: false, minLength: CHUNK_BYTES });
  // Flushed on a timer only when something was logged since: an idle service makes no writes.
  let pending = false;
  const write = destination.write.bind(destination);
  destination.write = (data: string) => {
    pending = true;
    return write(data);
  };
  const timer = setInterval(() => {
    if (!pending) return;
    pending = false;
    destination.flush();
  }, FLUSH_MS).unref();
  destination.on("close", () => clearInterval(timer));
  return destination;
}
