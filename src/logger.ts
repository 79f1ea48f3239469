import { pino, type Logger } from "pino";

export type { Logger };

/** Structured JSON logs on stdout. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { service: "tenancy" }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}
