import { describe, expect, it } from "vitest";
import { backoff, newId, retryAfterMs, tokenClaims, validQuantity } from "../../src/http.js";
import { InvalidQuantityError, MeterlineError } from "../../src/index.js";

describe("backoff", () => {
  it("doubles from 250 ms up to 30 s, jittered into the upper half", () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const ceiling = Math.min(30_000, 250 * 2 ** attempt);
      for (let i = 0; i < 50; i++) {
        const wait = backoff(attempt);
        expect(wait).toBeGreaterThanOrEqual(ceiling / 2);
        expect(wait).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it("never waits less than Retry-After asks (capped at 30 s)", () => {
    expect(backoff(0, 2_000)).toBeGreaterThanOrEqual(2_000);
    expect(backoff(0, 600_000)).toBeLessThanOrEqual(30_000);
  });

  it("reads Retry-After in seconds or as a date", () => {
    expect(retryAfterMs(new Response(null, { headers: { "retry-after": "1.5" } }))).toBe(1_500);
    const later = new Date(Date.now() + 5_000).toUTCString();
    const fromDate = retryAfterMs(new Response(null, { headers: { "retry-after": later } }));
    expect(fromDate).toBeGreaterThan(3_000);
    expect(retryAfterMs(new Response(null))).toBeNull();
  });
});

describe("quantities", () => {
  it("accepts numbers and decimal strings, refuses negatives and non-numbers", () => {
    expect(validQuantity(3)).toBe(3);
    expect(validQuantity("0.000001")).toBe("0.000001");
    for (const bad of [-1, "-0.5", "lots", Number.NaN, Number.POSITIVE_INFINITY, ""]) {
      const attempt = () => validQuantity(bad as number);
      expect(attempt).toThrow(InvalidQuantityError);
      try {
        attempt();
      } catch (error) {
        expect((error as MeterlineError).code).toBe("invalid_quantity");
      }
    }
  });
});

describe("ids and tokens", () => {
  it("makes a new id every time", () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newId()));
    expect(ids.size).toBe(10_000);
    expect([...ids][0]).toMatch(/^evt_[0-9a-f]{32}$/);
  });

  it("reads a customer token's customer and expiry", () => {
    const payload = Buffer.from(JSON.stringify({ w: 1, c: "org_1", e: 2_000_000_000 })).toString("base64url");
    expect(tokenClaims(`mlct_${payload}.sig`)).toEqual({ customer: "org_1", expiresAt: 2_000_000_000_000 });
    expect(tokenClaims("mlct_garbage")).toEqual({ customer: null, expiresAt: null });
  });
});
