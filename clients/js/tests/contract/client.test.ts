// The client against the real server started by the test run.
import { afterAll, describe, expect, it } from "vitest";
import {
  ApiError,
  InsufficientCreditsError,
  InvalidQuantityError,
  LimitExceededError,
  Meterline,
  MeterlineError,
  initUsageTracking,
  trackUsage,
  type Rejection,
  type Warning,
} from "../../src/index.js";
import { admin, meteredCustomer, shared, total, unique } from "../support/world.js";

const client = admin();
afterAll(() => client.shutdown());

describe("tracking", () => {
  it("sends tracked events in batches, each counted once", async () => {
    const meter = unique("batched");
    await client.createMeter({ key: meter, event_type: meter, aggregation: "count" });
    const tracker = admin({ batchSize: 100, flushInterval: 50 });
    const ids = new Set<string>();
    for (let i = 0; i < 1_000; i++) ids.add(tracker.track({ type: meter, customer: "acme" }));
    await tracker.flush();
    await tracker.shutdown();
    expect(ids.size).toBe(1_000);
    expect(tracker.rejected).toEqual([]);
    expect(await total(client, meter, "acme")).toBe(1_000);
  });

  it("reports refused events through onError and rejected, never silently", async () => {
    const seen: { error: MeterlineError; rejected: Rejection[] }[] = [];
    const tracker = admin({ onError: (error, rejected) => seen.push({ error, rejected }) });
    const meter = unique("refused");
    await client.createMeter({ key: meter, event_type: meter, aggregation: "count" });
    tracker.track({ type: meter, customer: "acme" });
    const bad = tracker.track({ type: meter, customer: "acme", timestamp: "2026-11-21T10:00:00" });
    await tracker.shutdown();
    expect(tracker.rejected.map((r) => [r.event.id, r.code])).toEqual([[bad, "invalid_timestamp"]]);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.rejected[0]!.event.id).toBe(bad);
    expect(await total(client, meter, "acme")).toBe(1);
  });

  it("surfaces accepted events that no meter counts as warnings", async () => {
    const seen: Warning[] = [];
    const tracker = admin({ onWarning: (warnings) => seen.push(...warnings) });
    const id = tracker.track({ type: unique("nobody_counts"), customer: "acme" });
    await tracker.shutdown();
    expect(tracker.rejected).toEqual([]);
    expect(tracker.warnings.map((w) => [w.event.id, w.code])).toEqual([[id, "unmetered"]]);
    expect(seen).toHaveLength(1);
  });

  it("refuses a negative quantity before anything is sent", async () => {
    let requests = 0;
    const counting = new Meterline({
      apiKey: shared().key,
      baseUrl: shared().baseUrl,
      fetch: (input, init) => {
        requests += 1;
        return fetch(input, init);
      },
    });
    expect(() => counting.track({ type: "x", customer: "c", quantity: -1 })).toThrow(InvalidQuantityError);
    await expect(counting.consume({ customer: "c", feature: "x", quantity: "-2" })).rejects.toThrow(InvalidQuantityError);
    await expect(counting.reserve({ customer: "c", feature: "x", quantity: -5 })).rejects.toThrow(InvalidQuantityError);
    await expect(counting.settle("r", -1)).rejects.toThrow(InvalidQuantityError);
    await counting.shutdown();
    expect(requests).toBe(0);
  });

  it("keeps the aliases apps already call", async () => {
    const meter = unique("legacy");
    await client.createMeter({ key: meter, event_type: "page_view", aggregation: "sum" });
    const tracker = initUsageTracking({ baseURL: shared().baseUrl, apiKey: shared().key });
    const id = trackUsage({ userId: "user_7", eventName: "page_view", value: 3, properties: { path: "/" } });
    expect(id).toMatch(/^evt_/);
    await tracker.shutdown();
    expect(await total(client, meter, "user_7")).toBe(3);
  });
});

describe("deciding", () => {
  it("consumes until the limit, then throws LimitExceededError", async () => {
    const { feature, customer } = await meteredCustomer(client, { max: "5" });
    const allowed: boolean[] = [];
    for (let i = 0; i < 5; i++) allowed.push((await client.consume({ customer, feature })).allowed);
    expect(allowed).toEqual([true, true, true, true, true]);
    const refused = await client.consume({ customer, feature }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LimitExceededError);
    expect(refused).toBeInstanceOf(MeterlineError);
    expect((refused as LimitExceededError).code).toBe("limit_exceeded");
    expect((refused as LimitExceededError).result.limits[0]!.remaining).toBe("0");
    const check = await client.check({ customer, feature });
    expect([check.allowed, check.reason]).toEqual([false, "limit_exceeded"]);
    expect(await total(client, feature, customer)).toBe(5);
  });

  it("throws InsufficientCreditsError when credits run out", async () => {
    const { feature, customer } = await meteredCustomer(client, { creditCost: "4", credits: "10" });
    await client.consume({ customer, feature });
    await client.consume({ customer, feature });
    const refused = await client.consume({ customer, feature }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InsufficientCreditsError);
    expect((refused as InsufficientCreditsError).code).toBe("insufficient_credits");
    expect((await client.credits(customer)).balance).toBe("2");
  });

  it("holds, settles and releases", async () => {
    const { feature, customer } = await meteredCustomer(client, { max: "10" });
    const hold = await client.reserve({ customer, feature, quantity: 8, ttlSeconds: 60 });
    expect([hold.allowed, hold.status]).toEqual([true, "held"]);
    const second = await client.reserve({ customer, feature, quantity: 5 });
    expect(second.allowed).toBe(false); // 8 held of 10
    const settled = await client.settle(hold.id!, 3);
    expect(settled.status).toBe("settled");
    const third = await client.reserve({ customer, feature, quantity: 5 });
    expect(third.allowed).toBe(true);
    expect((await client.release(third.id!)).status).toBe("released");
    const entitlement = (await client.entitlements(customer)).features.find((f) => f.feature === feature)!;
    expect(entitlement.limits[0]!.used).toBe("3");
  });

  it("answers problems as typed errors carrying the server's code", async () => {
    const missing = await client.getCustomer(unique("nobody")).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ApiError);
    expect([(missing as ApiError).status, (missing as ApiError).code]).toEqual([404, "not_found"]);
    const reader = new Meterline({ apiKey: "ml_" + "x".repeat(43), baseUrl: shared().baseUrl });
    const refused = await reader.usage("acme").catch((e: unknown) => e);
    expect((refused as ApiError).status).toBe(401);
    expect((refused as ApiError).problem.type).toMatch(/^urn:meterline:problem:/);
  });

  it("reads usage, entitlements, credits and meter usage", async () => {
    const { feature, customer } = await meteredCustomer(client, { max: "100", credits: "50" });
    await client.consume({ customer, feature, quantity: 4 });
    const usage = await client.usage(customer);
    expect(usage.features.find((f) => f.feature === feature)!.used).toBe("4");
    const entitlements = await client.entitlements(customer);
    expect(entitlements.plan).toBe(feature);
    expect((await client.credits(customer)).balance).toBe("50");
    const byDay = await client.meterUsage(feature, { customer, window: "day" });
    expect(byDay.data.map((r) => r.value)).toEqual(["4"]);
  });
});
