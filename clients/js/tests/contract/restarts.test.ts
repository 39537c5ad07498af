// 10,000 events tracked from Node while the server is restarted twice: each counted once.
import { afterAll, expect, it } from "vitest";
import { Meterline } from "../../src/index.js";
import { MeterlineServer } from "../support/server.js";
import { total } from "../support/world.js";

let server: MeterlineServer;
afterAll(() => server?.stop());

it("counts every one of 10,000 events once through two server restarts", async () => {
  server = await MeterlineServer.start();
  const admin = new Meterline({ apiKey: server.key, baseUrl: server.baseUrl });
  await admin.createMeter({ key: "streamed", event_type: "streamed", aggregation: "count" });
  let failures = 0;
  const tracker = new Meterline({
    fetch: (input, init) =>
      fetch(input, init).catch((error: unknown) => {
        failures += 1; // the server was down: this batch is retried
        throw error;
      }),
    apiKey: server.key,
    baseUrl: server.baseUrl,
    batchSize: 250,
    flushInterval: 20,
    maxQueueSize: 20_000,
  });
  const ids = new Set<string>();
  const trackSome = async (n: number) => {
    for (let i = 0; i < n; i++) {
      ids.add(tracker.track({ type: "streamed", customer: "acme", properties: { i: ids.size } }));
      if (i % 500 === 499) await new Promise((r) => setTimeout(r, 5)); // let batches go out
    }
  };
  await trackSome(3_000);
  await server.stop(); // batches in flight fail and are retried
  await trackSome(3_000);
  await server.begin();
  await trackSome(2_000);
  await server.restart();
  await trackSome(2_000);
  await tracker.flush();
  await tracker.shutdown();
  expect(failures).toBeGreaterThan(0);
  expect(ids.size).toBe(10_000);
  expect(tracker.rejected).toEqual([]);
  expect(await total(admin, "streamed", "acme")).toBe(10_000);
  const listed = await admin.get<{ data: unknown[] }>("/v1/events", { customer: "acme", limit: 1000 });
  expect(listed.data).toHaveLength(1000);
  await admin.shutdown();
});
