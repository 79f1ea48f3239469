import { describe, expect, it } from "vitest";
import { deadlineFromHeaders } from "../../src/rpc/deadline.js";
import { remainingMs } from "../../src/common/deadline.js";

describe("deadlineFromHeaders", () => {
  const arrival = 1_700_000_000_000;

  it("reads gRPC's grpc-timeout in every unit, counted from the request's arrival", () => {
    expect(deadlineFromHeaders({ "grpc-timeout": "250m" }, arrival)).toBe(arrival + 250);
    expect(deadlineFromHeaders({ "grpc-timeout": "2S" }, arrival)).toBe(arrival + 2_000);
    expect(deadlineFromHeaders({ "grpc-timeout": "1M" }, arrival)).toBe(arrival + 60_000);
    expect(deadlineFromHeaders({ "grpc-timeout": "1H" }, arrival)).toBe(arrival + 3_600_000);
    expect(deadlineFromHeaders({ "grpc-timeout": "1500u" }, arrival)).toBe(arrival + 1.5);
    expect(deadlineFromHeaders({ "grpc-timeout": "3000000n" }, arrival)).toBe(arrival + 3);
  });

  it("reads Connect's connect-timeout-ms", () => {
    expect(deadlineFromHeaders({ "connect-timeout-ms": "750" }, arrival)).toBe(arrival + 750);
  });

  it("has none without a header, or with a malformed one (which the protocol refuses anyway)", () => {
    expect(deadlineFromHeaders({}, arrival)).toBeUndefined();
    expect(deadlineFromHeaders({ "grpc-timeout": "123456789S" }, arrival)).toBeUndefined();
    expect(deadlineFromHeaders({ "grpc-timeout": "5s" }, arrival)).toBeUndefined();
    expect(deadlineFromHeaders({ "connect-timeout-ms": "-1" }, arrival)).toBeUndefined();
  });
});

describe("remainingMs", () => {
  it("is what is left of the deadline now, never 0 (no timeout at all to PostgreSQL)", () => {
    const now = Date.now();
    expect(remainingMs(now + 60_000)).toBeGreaterThan(59_000);
    expect(remainingMs(now + 60_000)).toBeLessThanOrEqual(60_000);
    expect(remainingMs(now - 5_000)).toBe(1);
  });
});
