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
  useUsageTracking,
} from "../../src/react/index.js";
import { admin, meteredCustomer, shared, total } from "../support/world.js";

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

function Legacy({ feature, userId }: { feature: string; userId: string }) {
  const { trackAPICall, trackFeatureUsage } = useUsageTracking({ apiCallFeature: feature });
  return (
    <>
      <button onClick={() => void trackAPICall(userId, "/search", "get")}>api</button>
      <button onClick={() => void trackFeatureUsage(userId, feature, 5)}>feature</button>
    </>
  );
}

it("shows credits and meter usage, and useUsageTracking consumes through the server", async () => {
  const { feature, customer } = await meteredCustomer(client, { creditCost: "2", credits: "100" });
  const { token } = await client.createToken(customer);
  const browser = new Meterline({ token, baseUrl: shared().baseUrl });
  render(
    <MeterlineProvider client={browser}>
      <Wallet />
      <Meter meter={feature} />
      <Legacy feature={feature} userId={customer} />
    </MeterlineProvider>,
  );
  await screen.findByText("balance 100");
  await screen.findByText("used 0 in 0 day(s)");
  fireEvent.click(screen.getByText("api"));
  await screen.findByText("balance 98");
  fireEvent.click(screen.getByText("feature"));
  await screen.findByText("balance 88");
  await screen.findByText("used 6 in 1 day(s)");
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
