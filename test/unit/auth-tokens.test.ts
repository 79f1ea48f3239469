import { describe, expect, it } from "vitest";
import { Violations } from "../../src/common/errors.js";
import { mintDevToken } from "../../src/auth/dev-token.js";
import { createTokenVerifier, InvalidTokenError } from "../../src/auth/token-verifier.js";
import { checkRoles } from "../../src/memberships/membership.roles.js";

const secret = "dev-secret-0123456789-0123456789-abcdef";

describe("mintDevToken", () => {
  it("mints a token the server accepts, with the platform admin scope on request", async () => {
    const verifier = createTokenVerifier({ mode: "jwt", keys: { kind: "secret", secret }, issuer: "dev", audience: "tenancy" });
    const sub = crypto.randomUUID();
    const admin = await mintDevToken({ secret, sub: sub.toUpperCase(), admin: true, issuer: "dev", audience: "tenancy" });
    expect(await verifier.verify(admin)).toEqual({ userId: sub, platformAdmin: true });
    const plain = await mintDevToken({ secret, sub, issuer: "dev", audience: "tenancy" });
    expect(await verifier.verify(plain)).toEqual({ userId: sub, platformAdmin: false });
    // Without the configured issuer and audience it is refused.
    await expect(verifier.verify(await mintDevToken({ secret, sub }))).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it("refuses a short secret and a sub that is not a UUID", async () => {
    await expect(mintDevToken({ secret: "short", sub: crypto.randomUUID() })).rejects.toThrow(/at least 32 bytes/);
    await expect(mintDevToken({ secret, sub: "alice" })).rejects.toThrow(/UUID/);
  });
});

describe("checkRoles", () => {
  it("keeps valid names in order without duplicates", () => {
    const violations = new Violations();
    expect(checkRoles(["b", "a", "b", "x.y-z_1"], "roles", violations)).toEqual(["b", "a", "x.y-z_1"]);
    expect(violations.empty).toBe(true);
  });

  it("names each bad role and a list that is too long", () => {
    const violations = new Violations();
    checkRoles(["Admin", "a\n", "a".repeat(65), ...Array.from({ length: 33 }, (_, i) => `r${i}`)], "roles", violations);
    expect(() => violations.throwIfAny()).toThrow(/roles\[0\].*roles\[1\].*roles\[2\].*roles: has 33 distinct roles/s);
  });
});
