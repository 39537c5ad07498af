// Helpers over the shared server: an admin client, unique names, a metered plan.
import { inject } from "vitest";
import { Meterline } from "../../src/index.js";
import { newId } from "../../src/http.js";

export const shared = () => inject("meterline");

export function admin(options: Partial<ConstructorParameters<typeof Meterline>[0]> = {}): Meterline {
  const { baseUrl, key } = shared();
  return new Meterline({ apiKey: key, baseUrl, ...options });
}

export const unique = (prefix: string) => `${prefix}_${newId("").slice(0, 10)}`;

/** A sum meter `feature` on a plan with a hard day limit, and a customer on it. */
export async function meteredCustomer(
  client: Meterline,
  options: { max?: string; credits?: string; creditCost?: string } = {},
): Promise<{ feature: string; customer: string }> {
  const feature = unique("feat");
  const customer = unique("cust");
  await client.createMeter({ key: feature, event_type: feature, aggregation: "sum" });
  const entry: Record<string, unknown> = {};
  if (options.max) entry.limits = [{ window: "day", max: options.max, enforcement: "hard" }];
  if (options.creditCost) entry.credit_cost = { per_unit: options.creditCost };
  await client.createPlan({ key: feature, name: feature, currency: "USD", features: { [feature]: entry } } as never);
  await client.createCustomer({ external_id: customer });
  await client.subscribe({ customer, plan: feature });
  if (options.credits) await client.grantCredits(customer, { amount: options.credits, source: "purchase" });
  return { feature, customer };
}

export async function total(client: Meterline, meter: string, customer: string): Promise<number> {
  const usage = await client.meterUsage(meter, { customer });
  return usage.data.reduce((sum, row) => sum + Number(row.value), 0);
}
