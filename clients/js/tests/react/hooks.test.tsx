// @vitest-environment jsdom
// The hooks in a DOM, against the real server: what they show, and that it follows
// consumes made through them or elsewhere.
import { act, cleanup, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { renderToString } from "react-dom/server";
import { afterAll, afterEach, expect, it } from "vitest";
import { Meterline } from "../../src/index.js";
import {
  MeterlineProvider,
  useCredits,
  useEntitlement,
  useTrack,
  useUsage,
} from "../../src/react/index.js";
import { SearchBox } from "./ApiCalls.js";
import { admin, meteredCustomer, shared, total, unique } from "../support/world.js";

const client = admin();
afterEach(cleanup);
afterAll(() => client.shutdown());

function Quota({ feature }: { feature: string }) {
  const { allowed, used, remaining, limit, resetsAt, loading, error } = useEntitlement(feature);
  if (loading) return <p>loading…</p>;
  if (error) return <p role="alert">{error.message}</p>;
  return (
    <p data-testid={`quota-${feature}`}>
      {allowed ? "allowed" : "refused"} {used}/{limit} left {remaining} resets {resetsAt ? "yes" : "no"}
    </p>
  );
}

function Use({ feature }: { feature: string }) {
  const track = useTrack();
  return <button onClick={() => void track(feature)}>use {feature}</button>;
}

it("shows the remaining quota and follows consumes, from the hook and from elsewhere", async () => {
  const { feature, customer } = await meteredCustomer(client, { max: "3" });
  render(
    <MeterlineProvider client={client} customer={customer}>
      <Quota feature={feature} />
      <Use feature={feature} />
    </MeterlineProvider>,
  );
  expect(screen.getByText("loading…")).toBeTruthy();
  await screen.findByText("allowed 0/3 left 3 resets yes");
  fireEvent.click(screen.getByText(`use ${feature}`));
  await screen.findByText("allowed 1/3 left 2 resets yes");
  await client.consume({ customer, feature, quantity: 2 }); // elsewhere: the server decides
  await act(() => Promise.resolve(window.dispatchEvent(new Event("focus"))));
  await screen.findByText("refused 3/3 left 0 resets yes");
  fireEvent.click(screen.getByText(`use ${feature}`)); // refused by the server: nothing recorded
  await waitFor(async () => expect(await total(client, feature, customer)).toBe(3));
});

it("refreshes on an interval, sharing one request among the components that show it", async () => {
  const { feature, customer } = await meteredCustomer(client, { max: "10" });
  let reads = 0;
  const counting = new Meterline({
    apiKey: shared().key,
    baseUrl: shared().baseUrl,
    fetch: (input, init) => {
      if (String(input).includes("/entitlements")) reads += 1;
      return fetch(input, init);
    },
  });
  render(
    <MeterlineProvider client={counting} customer={customer} refreshInterval={150}>
      <Quota feature={feature} />
      <Quota feature={feature} />
    </MeterlineProvider>,
  );
  await waitFor(() => expect(screen.getAllByText("allowed 0/10 left 10 resets yes")).toHaveLength(2));
  expect(reads).toBe(1);
  await client.consume({ customer, feature, quantity: 4 });
  await waitFor(() => expect(screen.getAllByText("allowed 4/10 left 6 resets yes")).toHaveLength(2));
  await counting.shutdown();
});

function Wallet() {
  const { balance, loading } = useCredits();
  return <p>{loading ? "…" : `balance ${balance}`}</p>;
}

function Meter({ meter }: { meter: string }) {
  const { total: used, rows, loading } = useUsage(meter, { window: "day" });
  return <p>{loading ? "…" : `used ${used} in ${rows.length} day(s)`}</p>;
}

it("shows credits and meter usage, and useUsageTracking consumes through the server", async () => {
  // the README's SearchBox: API calls and AI insights, features of the customer's plan
  const feature = unique("meter");
  const customer = unique("cust");
  await client.createMeter({ key: feature, event_type: feature, aggregation: "sum" });
  for (const key of ["api_call", "ai_insight"]) {
    await client.getMeter(key).catch(() => client.createMeter({ key, event_type: key, aggregation: "count" }));
  }
  await client.createPlan({
    key: feature,
    name: "Legacy",
    currency: "USD",
    features: {
      [feature]: { credit_cost: { per_unit: "2" } },
      api_call: { credit_cost: { per_unit: "2" } },
      ai_insight: { credit_cost: { per_unit: "10" } },
    },
  } as never);
  await client.createCustomer({ external_id: customer });
  await client.subscribe({ customer, plan: feature });
  await client.grantCredits(customer, { amount: "100", source: "purchase" });
  const { token } = await client.createToken(customer);
  const browser = new Meterline({ token, baseUrl: shared().baseUrl });
  render(
    <MeterlineProvider client={browser}>
      <Wallet />
      <Meter meter={feature} />
      <SearchBox userId={customer} />
    </MeterlineProvider>,
  );
  await screen.findByText("balance 100");
  await screen.findByText("used 0 in 0 day(s)");
  fireEvent.click(screen.getByText("search"));
  await screen.findByText("balance 98");
  fireEvent.click(screen.getByText("insight"));
  await screen.findByText("balance 88");
  await browser.consume({ feature, quantity: 3 }); // elsewhere: a token's own consume
  await act(() => Promise.resolve(window.dispatchEvent(new Event("focus"))));
  await screen.findByText("used 3 in 1 day(s)");
  await screen.findByText("balance 82");
  const events = await client.get<{ data: { properties: Record<string, unknown> }[] }>("/v1/events", { customer });
  expect(events.data.map((e) => e.properties)).toContainEqual({ endpoint: "/search", method: "GET" });
  await browser.shutdown();
});

it("renders on the server without fetching anything", () => {
  let requests = 0;
  const counting = new Meterline({
    apiKey: shared().key,
    baseUrl: shared().baseUrl,
    fetch: () => {
      requests += 1;
      return Promise.reject(new Error("no request during SSR"));
    },
  });
  const html = renderToString(
    <MeterlineProvider client={counting} customer="org_ssr">
      <Quota feature="anything" />
      <Wallet />
    </MeterlineProvider>,
  );
  expect(html).toContain("loading…");
  expect(requests).toBe(0);
});
