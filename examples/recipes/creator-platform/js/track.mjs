// The platform's Node API server (Meterline's JavaScript SDK, with an admin API key: on
// your server only). A new creator on the free plan; the calls the API serves, tracked
// in batches; one call consumed before it runs (the server enforces the 1,000 cap); a
// customer token for the creator's browser. Prints its numbers as JSON on the last line.
import { ApiError, LimitExceededError, Meterline } from "@meterline/client";

const meterline = new Meterline({
  apiKey: process.env.METERLINE_API_KEY,
  baseUrl: process.env.METERLINE_URL ?? "http://127.0.0.1:8000",
});
const creator = process.env.CREATOR ?? "studio_web";

try {
  await meterline.createCustomer({ external_id: creator, name: "Studio Web" });
  await meterline.subscribe({ customer: creator, plan: "free" });
} catch (error) {
  if (!(error instanceof ApiError && error.code === "already_exists")) throw error;
}

// each call the API serves, queued and sent in batches (flushed here so the numbers show)
for (let i = 0; i < 40; i++) {
  meterline.track({ type: "api_call", customer: creator, properties: { endpoint: "/posts", method: "GET" } });
}
meterline.track({ type: "storage", customer: creator, properties: { bytes: 250_000_000 } });
meterline.track({ type: "message", customer: creator, properties: { count: 7 } });
await meterline.flush();

// an export may run only if the plan allows one more call: consume decides and records it
let remaining;
try {
  const { limits } = await meterline.consume({
    customer: creator,
    feature: "api_call",
    properties: { endpoint: "/export", method: "POST" },
  });
  remaining = limits[0].remaining;
} catch (error) {
  if (!(error instanceof LimitExceededError)) throw error;
  remaining = `refused: ${error.reason}`;
}

const usage = await meterline.usage(creator);
const used = Object.fromEntries(usage.features.map((f) => [f.feature, f.used]));
console.log(JSON.stringify({ creator, remaining, used }));
await meterline.shutdown(); // sends whatever is still queued
