// A 429 storm: a proxy answers many requests 429 with Retry-After; tracking and consumes
// get through, each counted once, and no retry comes sooner than the server asked.
import { afterAll, beforeAll, expect, it } from "vitest";
import { Meterline, MeterlineError } from "../../src/index.js";
import { Storm } from "../support/storm.js";
import { admin, meteredCustomer, shared, total, unique } from "../support/world.js";

const client = admin();
let storm: Storm;
beforeAll(async () => {
  storm = new Storm(shared().baseUrl, 0.3, 3, 3); // the first 3, then every 3rd request
  await storm.start();
});
afterAll(async () => {
  await storm.stop();
  await client.shutdown();
});

it("tracks through a 429 storm, every event counted once, honouring Retry-After", async () => {
  const meter = unique("stormy");
  await client.createMeter({ key: meter, event_type: meter, aggregation: "count" });
  const tracker = new Meterline({ apiKey: shared().key, baseUrl: storm.baseUrl, batchSize: 100, flushInterval: 10 });
  for (let i = 0; i < 2_000; i++) tracker.track({ type: meter, customer: "acme" });
  await tracker.flush();
  await tracker.shutdown();
  expect(tracker.rejected).toEqual([]);
  expect(await total(client, meter, "acme")).toBe(2_000);
  const refused = storm.seen.filter((s) => s.status === 429).length;
  expect(refused).toBeGreaterThanOrEqual(5);
  for (let i = 0; i + 1 < storm.seen.length; i++) {
    if (storm.seen[i]!.status === 429) expect(storm.seen[i + 1]!.at - storm.seen[i]!.at).toBeGreaterThanOrEqual(290);
  }
});

it("retries consumes through 429s (their ids count them once) until maxRetries", async () => {
  const { feature, customer } = await meteredCustomer(client, { max: "20" });
  const through = new Meterline({ apiKey: shared().key, baseUrl: storm.baseUrl, maxRetries: 3 });
  for (let i = 0; i < 6; i++) expect((await through.consume({ customer, feature })).allowed).toBe(true);
  expect(await total(client, feature, customer)).toBe(6);
  const never = new Storm(shared().baseUrl, 0, 1_000, 0); // every request refused
  await never.start();
  const stuck = new Meterline({ apiKey: shared().key, baseUrl: never.baseUrl, maxRetries: 2 });
  const error = await stuck.consume({ customer, feature }).catch((e: unknown) => e);
  expect((error as MeterlineError).code).toBe("rate_limited");
  expect(never.seen).toHaveLength(3); // one try and two retries
  await never.stop();
  await Promise.all([through.shutdown(), stuck.shutdown()]);
});
