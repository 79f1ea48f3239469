import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { boundedTransaction, readTimeoutMs } from "../../src/database/bounded.js";
import { sqlQuery } from "../../src/database/sql.js";
import { DeadlineExceededError } from "../../src/common/errors.js";
import { deadlineFromHeaders } from "../../src/rpc/deadline.js";
import { classifyDatabaseError } from "../../src/database/failures.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

const timeouts = (em: Parameters<typeof sqlQuery>[0]) =>
  sqlQuery<{ statement: string; lock: string }>(
    em,
    `SELECT current_setting('statement_timeout') AS statement, current_setting('lock_timeout') AS lock`,
    [],
  ).then((rows) => rows[0]!);

const ms = (setting: string) => {
  const match = /^(\d+)(ms|s)$/.exec(setting);
  if (!match) throw new Error(`unexpected timeout setting ${setting}`);
  return Number(match[1]) * (match[2] === "s" ? 1000 : 1);
};

describe("bounded transactions", () => {
  it("set the statement and lock timeouts to what is left of the deadline, counting the time already spent", async () => {
    // A 2 s deadline for a request that arrived 1.2 s ago: at most 0.8 s is left.
    const deadline = deadlineFromHeaders({ "grpc-timeout": "2S" }, Date.now() - 1_200)!;
    const set = await boundedTransaction(server.orm.em.fork(), deadline, timeouts);
    expect(ms(set.statement)).toBeGreaterThan(0);
    expect(ms(set.statement)).toBeLessThanOrEqual(800);
    expect(ms(set.lock)).toBe(ms(set.statement));
    // Local to the transaction: the pooled connection keeps no timeout.
    expect((await timeouts(server.orm.em.fork())).statement).toBe("0");
  });

  it("refuse a deadline that has already passed without a round trip", async () => {
    let ran = false;
    const work = async () => {
      ran = true;
    };
    await expect(boundedTransaction(server.orm.em.fork(), Date.now() - 1, work)).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(ran).toBe(false);
  });
});

describe("reads without a transaction", () => {
  it("are given what is left of the deadline as their timeout, none without one, and refused once it has passed", () => {
    const deadline = deadlineFromHeaders({ "grpc-timeout": "2S" }, Date.now() - 1_200)!;
    expect(readTimeoutMs(deadline)).toBeLessThanOrEqual(800);
    expect(readTimeoutMs(deadline)).toBeGreaterThan(0);
    expect(readTimeoutMs(undefined)).toBeUndefined();
    expect(() => readTimeoutMs(Date.now() - 1)).toThrow(DeadlineExceededError);
  });

  it("are cancelled by PostgreSQL when their timeout passes, as DEADLINE_EXCEEDED", async () => {
    const error = await sqlQuery(server.orm.em.fork(), "SELECT pg_sleep(5)", [], { timeoutMs: readTimeoutMs(Date.now() + 200) }).catch((e: unknown) => e);
    expect(classifyDatabaseError(error)).toBe("timeout");
    const { rows } = await server.sql.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'`);
    expect(rows[0].n).toBe(0);
  });
});
