import { LimitExceededError, Meterline } from "@meterline/client";

const meterline = new Meterline({
  apiKey: process.env.METERLINE_API_KEY, // on your server only: browsers use customer tokens
  baseUrl: process.env.METERLINE_URL ?? "http://127.0.0.1:8000",
});

// usage, queued and sent in batches (each id made here once: a retry never counts twice)
meterline.track({ type: "api_call", customer: "org_acme", properties: { endpoint: "/search" } });

// may Acme scan one more receipt now? if so, record it in the same step
try {
  const { limits } = await meterline.consume({
    customer: "org_acme",
    feature: "ocr_scan",
    properties: { document: "receipt" }, // the demo's ocr_scan meter counts receipts and invoices
  });
  console.log(`scan recorded; ${limits[0].remaining} left today`);
} catch (error) {
  if (!(error instanceof LimitExceededError)) throw error;
  console.log(`refused: ${error.reason}`, error.result.limits);
}

const { features } = await meterline.entitlements("org_acme");
for (const { feature, limits } of features.filter((f) => f.limits.length > 0)) {
  console.log(feature, limits.map((l) => `${l.used}/${l.max ?? "∞"} per ${l.window}`).join(", "));
}

await meterline.shutdown(); // sends whatever is still queued
