// A browser's client: a customer token only (from getToken), renewed before it expires;
// the server answers CORS for it from the configured origin, never for an API key.
import { afterAll, expect, it } from "vitest";
import { ApiError, Meterline, type TokenCreated } from "../../src/index.js";
import { admin, meteredCustomer, shared } from "../support/world.js";

const client = admin();
const ORIGIN = "http://app.example.test"; // the shared server's METERLINE_CORS_ORIGINS
afterAll(() => client.shutdown());

it("reads and consumes with a token only, renewing it through getToken", async () => {
  const { feature, customer } = await meteredCustomer(client, { max: "3" });
  const grants: TokenCreated[] = [];
  const browser = new Meterline({
    baseUrl: shared().baseUrl,
    getToken: async () => {
      const grant = await client.createToken(customer, 2); // short, to see it renewed
      grants.push(grant);
      return grant;
    },
  });
  expect(browser.customer).toBeNull(); // no token asked for yet
  const before = await browser.entitlements(); // the token's customer by default
  expect(before.customer).toBe(customer);
  expect(browser.customer).toBe(customer);
  expect((await browser.consume({ feature })).allowed).toBe(true);
  await new Promise((r) => setTimeout(r, 2_100)); // the first token has expired
  const after = await browser.entitlements();
  expect(after.features.find((f) => f.feature === feature)!.limits[0]!.remaining).toBe("2");
  expect(grants.length).toBeGreaterThanOrEqual(2);
  const other = await browser.usage("someone_else").catch((e: unknown) => e);
  expect([(other as ApiError).status, (other as ApiError).code]).toEqual([403, "insufficient_scope"]);
  await browser.shutdown();
});

it("gets CORS headers with a token from the allowed origin, none with an API key", async () => {
  const { customer } = await meteredCustomer(client);
  const { token } = await client.createToken(customer);
  const url = `${shared().baseUrl}/v1/customers/${customer}/entitlements`;
  const preflight = await fetch(url, {
    method: "OPTIONS",
    headers: { Origin: ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" },
  });
  expect(preflight.status).toBe(204);
  expect(preflight.headers.get("access-control-allow-origin")).toBe(ORIGIN);
  const withToken = await fetch(url, { headers: { Origin: ORIGIN, Authorization: `Bearer ${token}` } });
  expect(withToken.headers.get("access-control-allow-origin")).toBe(ORIGIN);
  const withKey = await fetch(url, { headers: { Origin: ORIGIN, Authorization: `Bearer ${shared().key}` } });
  expect(withKey.status).toBe(200);
  expect(withKey.headers.get("access-control-allow-origin")).toBeNull();
  const eventsPreflight = await fetch(`${shared().baseUrl}/v1/events`, {
    method: "OPTIONS",
    headers: { Origin: ORIGIN, "Access-Control-Request-Method": "POST" },
  });
  expect(eventsPreflight.headers.get("access-control-allow-origin")).toBeNull();
});
