import os from "node:os";

/**
 * A start-up failure the operator can fix. Its message is one line that says
 * what is wrong and what to do; main.ts prints it without a stack trace.
 */
export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StartupError";
  }
}

interface SystemError extends Error {
  code?: string;
  syscall?: string;
}

/** The error of `listen()` as one actionable line, or undefined when it is not a listen error. */
export function listenFailure(error: unknown, port: number, host: string): StartupError | undefined {
  const { code, syscall } = error as SystemError;
  if (syscall !== "listen" && syscall !== "bind" && syscall !== "getaddrinfo") return undefined;
  const where = `${host}:${port}`;
  switch (code) {
    case "EADDRINUSE":
      return new StartupError(`port ${port} on ${host} is already in use by another process: stop that process, or set PORT to a free port (PORT=0 picks one)`, { cause: error });
    case "EACCES":
      return new StartupError(
        `cannot listen on ${where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE): set PORT to 1024 or above`,
        { cause: error },
      );
    case "EADDRNOTAVAIL":
      return new StartupError(`cannot listen on ${where}: HOST ${host} is not an address of this machine: set HOST to one of its addresses (0.0.0.0 for all of them)`, {
        cause: error,
      });
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_FAIL":
      return new StartupError(`cannot listen on ${where}: HOST ${host} does not resolve to an address: set HOST to an IP address or a name this machine resolves`, {
        cause: error,
      });
    default:
      return new StartupError(`cannot listen on ${where}: ${(error as Error).message}: check HOST and PORT`, { cause: error });
  }
}

/** The SQLSTATE of a PostgreSQL error, or the errno code of a socket error. */
function errorCode(error: unknown): string | undefined {
  const code = (error as SystemError | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/**
 * A failure to connect to the database or to migrate it, as one actionable
 * line. `database` names it for the operator: DATABASE_URL (its password
 * hidden) or the embedded PostgreSQL.
 */
export function databaseFailure(error: unknown, step: "connect" | "migrate", database: { embedded: boolean; url: string }): StartupError {
  const message = oneLine(error);
  const code = errorCode(error);
  const which = database.embedded ? "the embedded PostgreSQL" : `the database of DATABASE_URL (${database.url})`;
  if (step === "migrate") {
    return new StartupError(
      `applying the migrations to ${which} failed, and none was applied (they run in one transaction): ${message}: fix the cause, or start with MIGRATE_ON_START=false to run the schema as it is`,
      { cause: error },
    );
  }
  if (code?.startsWith("28")) {
    return new StartupError(`${which} refused the login: ${message}: check the user and password in DATABASE_URL`, { cause: error });
  }
  const advice = database.embedded
    ? "LOG_LEVEL=debug shows its log"
    : "check that PostgreSQL runs there and accepts connections, or unset DATABASE_URL to use the embedded PostgreSQL";
  return new StartupError(`cannot connect to ${which}: ${message}: ${advice}`, { cause: error });
}

/** A database URL fit for logs and messages: its password replaced by ***. */
export function redactedUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = "***";
  return parsed.toString();
}

/** An error's message on one line (PostgreSQL's and Node's messages are, but wrapped ones may not be). */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.replace(/\s*\n\s*/g, " ").trim();
}

interface StartupLog {
  info(fields: object, message: string): void;
  debug(fields: object, message: string): void;
}

/**
 * What a start has set up so far (the embedded PostgreSQL, the ORM, the
 * server...), undone in reverse order when a later step fails or when
 * SIGINT/SIGTERM arrives before the start is done, so that a failed start
 * leaves no PostgreSQL running behind it. A signal undoes what is set up at
 * once; the step under way is undone as soon as it has finished (its add()
 * throws); a second signal exits at once.
 */
export class StartupCleanup {
  private undoers: Array<() => unknown> = [];
  private undoing: Promise<void> = Promise.resolve();
  private signal: NodeJS.Signals | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => this.interrupt(signal);

  constructor(private readonly log: StartupLog) {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
  }

  /** Registers how to undo a step that has succeeded; throws when a signal asked to stop meanwhile. */
  add(undo: () => unknown): void {
    this.undoers.push(undo);
    if (this.signal) throw new StartupInterrupted(this.signal);
  }

  /** The exit status for the signal that interrupted the start, if one did. */
  get interruptedStatus(): number | undefined {
    return this.signal === undefined ? undefined : signalExitStatus(this.signal);
  }

  /** Undoes every registered step, in reverse order; resolves when all undoing (also a signal's) is done. */
  undo(): Promise<void> {
    const undoers = this.undoers.reverse();
    this.undoers = [];
    this.undoing = this.undoing.then(async () => {
      for (const undo of undoers) {
        try {
          await undo();
        } catch (error) {
          this.log.debug({ err: error }, "undoing a start-up step failed");
        }
      }
    });
    return this.undoing;
  }

  /** The start succeeded: signals are the caller's from now on (unless one came during the last step). */
  done(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
    if (this.signal) throw new StartupInterrupted(this.signal);
  }

  private interrupt(signal: NodeJS.Signals): void {
    if (this.signal) process.exit(signalExitStatus(signal));
    this.signal = signal;
    this.log.info({ signal }, "interrupted while starting: stopping what was started");
    void this.undo();
  }
}

/** Thrown by StartupCleanup.add() when a signal arrived during the step it registers. */
export class StartupInterrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
    this.name = "StartupInterrupted";
  }
}

/** 128 + the signal's number, as a shell reports a process that a signal ended. */
function signalExitStatus(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 15);
}

/**
 * Ends a failed start: one line on stderr, exit status 1. An error that is
 * not a StartupError is a bug, or a case not foreseen here: its message
 * still fits one line, and LOG_LEVEL=debug adds the stack.
 */
export function exitOnStartupFailure(error: unknown, cleanup?: StartupCleanup, what = "tenancy failed to start"): never {
  // Interrupted: the log said so, and whatever failed afterwards failed because of it.
  const interrupted = cleanup?.interruptedStatus;
  if (interrupted !== undefined) process.exit(interrupted);
  const debug = ["debug", "trace"].includes((process.env.LOG_LEVEL ?? "").trim().toLowerCase());
  const line =
    error instanceof StartupError ? error.message : `${oneLine(error)} (unexpected; LOG_LEVEL=debug shows where it came from)`;
  process.stderr.write(`${what}: ${line}\n`);
  if (debug) {
    const cause = error instanceof StartupError ? error.cause : error;
    if (cause instanceof Error && cause.stack) process.stderr.write(`${cause.stack}\n`);
  }
  process.exit(1);
}
