import { describe, expect, it } from "vitest";
import { RecordHeaders } from "../../src/rpc/record-headers.js";

describe("RecordHeaders", () => {
  it("reads Node's request headers as Headers would: no pseudo-headers, names in any case, repeats joined", () => {
    const headers = new RecordHeaders({
      ":path": "/tenancy.v1.TenantService/GetTenant",
      "content-type": "application/grpc",
      "x-many": ["a", "b"],
      "grpc-timeout": "5S",
    }).asHeaders();
    expect(headers.get(":path")).toBeNull();
    expect(headers.get("Content-Type")).toBe("application/grpc");
    expect(headers.get("x-many")).toBe("a, b");
    expect(headers.has("GRPC-TIMEOUT")).toBe(true);
    expect(headers.get("authorization")).toBeNull();
    expect(Object.fromEntries(new Headers(headers))).toEqual(Object.fromEntries(new Headers({ "content-type": "application/grpc", "x-many": "a, b", "grpc-timeout": "5S" })));
  });

  it("sets, appends and deletes like Headers, and iterates every entry", () => {
    const ours = new RecordHeaders({ "grpc-status": "0" }).asHeaders();
    const fetch = new Headers({ "grpc-status": "0" });
    for (const h of [ours, fetch]) {
      h.set("Grpc-Status", "5");
      h.append("x-request-id", "r1");
      h.append("X-Request-Id", "r2");
      h.set("grpc-message", "gone");
      h.delete("GRPC-MESSAGE");
    }
    const entries = (h: Headers) => {
      const out: Record<string, string> = {};
      h.forEach((value, key) => (out[key] = value));
      return out;
    };
    expect(entries(ours)).toEqual(entries(fetch));
    expect([...ours.keys()].sort()).toEqual([...fetch.keys()].sort());
    expect([...ours.values()].sort()).toEqual([...fetch.values()].sort());
  });
});
