import { initUsageTracking, trackUsage } from "@meterline/client";

// the calls an app written against a hand-rolled tracker already makes
const tracker = initUsageTracking({
  baseURL: process.env.METERLINE_URL ?? "http://127.0.0.1:8000",
  apiKey: process.env.METERLINE_API_KEY,
});
trackUsage({ userId: "org_acme", eventName: "api_call", value: 1, properties: { endpoint: "/export" } });
await tracker.flush();
console.log("rejected:", tracker.rejected.length);
await tracker.shutdown();
