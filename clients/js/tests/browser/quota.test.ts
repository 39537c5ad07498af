// A React page (built with vite, on its own origin) in Debian's Chromium: a live
// useEntitlement drops as the test consumes, and the page's own consume goes through
// CORS with a customer token; the same call with an API key is blocked by the browser.
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Meterline } from "../../src/index.js";
import { AppServer, buildPage } from "../support/page.js";
import { MeterlineServer, freePort } from "../support/server.js";

let server: MeterlineServer;
let app: AppServer;
let browser: Browser;
let admin: Meterline;

beforeAll(async () => {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const [dir] = await Promise.all([
    buildPage(),
    MeterlineServer.start({ env: { METERLINE_CORS_ORIGINS: origin } }).then((s) => (server = s)),
  ]);
  admin = new Meterline({ apiKey: server.key, baseUrl: server.baseUrl });
  app = new AppServer(dir, () => admin.createToken("org_web", 600));
  await app.listen(port);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await admin?.shutdown();
  await server?.stop();
});

it("shows a live quota that drops as usage is consumed, in a real browser", async () => {
  await admin.createMeter({ key: "ocr_scan", event_type: "ocr_scan", aggregation: "count" });
  await admin.createPlan({
    key: "web",
    name: "Web",
    currency: "USD",
    features: { ocr_scan: { limits: [{ window: "day", max: "5", enforcement: "hard" }] } },
  } as never);
  await admin.createCustomer({ external_id: "org_web" });
  await admin.subscribe({ customer: "org_web", plan: "web" });

  const page = await browser.newPage();
  const failures: string[] = [];
  page.on("pageerror", (error) => failures.push(error.message));
  await page.goto(`${app.origin}/?meterline=${encodeURIComponent(server.baseUrl)}&feature=ocr_scan`);
  const messages: string[] = [];
  page.on("console", (message) => messages.push(message.text()));
  const body = page.locator("body");
  const expectText = async (text: string) => {
    try {
      await expect.poll(() => body.textContent({ timeout: 1_000 }), { timeout: 15_000 }).toContain(text);
    } catch (error) {
      throw new Error(`${(error as Error).message}\npage: ${await body.textContent()}\nconsole: ${messages.join("\n")}`);
    }
  };

  await expectText("5 of 5 left today");
  await admin.consume({ customer: "org_web", feature: "ocr_scan", quantity: 1 });
  await admin.consume({ customer: "org_web", feature: "ocr_scan", quantity: 1 });
  await expectText("3 of 5 left today"); // live: no reload
  await page.getByRole("button", { name: "Scan a document" }).click(); // the browser consumes
  await expectText("2 of 5 left today");
  await admin.consume({ customer: "org_web", feature: "ocr_scan" });
  await admin.consume({ customer: "org_web", feature: "ocr_scan" });
  await expectText("0 of 5 left today");
  expect(await page.getByRole("button", { name: "Scan a document" }).isDisabled()).toBe(true);

  const used = await admin.entitlements("org_web");
  expect(used.features[0]!.limits[0]!.used).toBe("5");
  // the page may not use an API key: no CORS answer for one, so the browser blocks it
  const withKey = await page.evaluate(
    ([url, key]) =>
      fetch(`${url}/v1/customers/org_web/entitlements`, { headers: { Authorization: `Bearer ${key}` } }).then(
        () => "read",
        () => "blocked",
      ),
    [server.baseUrl, server.key],
  );
  expect(withKey).toBe("blocked");
  if (process.env.METERLINE_SCREENSHOT) await page.screenshot({ path: process.env.METERLINE_SCREENSHOT });
  expect(failures).toEqual([]);
  await page.close();
});
