import { pino, type Logger } from "pino";

export type { Logger };

/**
 * Structured JSON logs, on stdout unless told otherwise. Written
 * asynchronously: lines logged while a write is under way go out together in
 * the next one, instead of one write(2) per line on the request path. pino
 * flushes what is left, synchronously, when the process exits (also through
 * process.exit, as the shutdown does).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    { level, base: { service: "tenancy" }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
