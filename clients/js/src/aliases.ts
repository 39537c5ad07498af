/**
 * The names apps moving from a common hand-rolled usage tracker already call:
 *
 *     initUsageTracking({ baseURL, apiKey })             → the shared client
 *     trackUsage({ userId, eventName, value, properties }) → queues an event, returns its id
 *
 * `eventName` is the event's type (what a meter's `event_type` names) and `userId` the
 * customer's external_id. They are thin: the returned client has every other verb.
 */
import { MeterlineError } from "./errors.js";
import { Meterline, type MeterlineOptions } from "./client.js";
import type { Quantity } from "./types.js";

let shared: Meterline | null = null;

export interface InitUsageTrackingOptions extends Omit<MeterlineOptions, "baseUrl"> {
  /** Where Meterline listens (`baseUrl` is accepted too). */
  baseURL?: string;
  baseUrl?: string;
}

/** Make (or replace) the shared client that `trackUsage` uses, and return it. */
export function initUsageTracking(options: InitUsageTrackingOptions): Meterline {
  const { baseURL, ...rest } = options;
  if (shared) void shared.shutdown();
  shared = new Meterline({ ...rest, baseUrl: baseURL ?? rest.baseUrl });
  return shared;
}

export interface TrackUsageParams {
  userId: string;
  eventName: string;
  value?: Quantity;
  properties?: Record<string, unknown>;
}

/** Queue one event through the shared client; returns its id. */
export function trackUsage(params: TrackUsageParams): string {
  if (!shared) throw new MeterlineError("call initUsageTracking({ baseURL, apiKey }) first", "not_initialized");
  return shared.track({
    type: params.eventName,
    customer: params.userId,
    quantity: params.value ?? 1,
    properties: params.properties,
  });
}

/** The shared client, or null before `initUsageTracking`. */
export function usageTracker(): Meterline | null {
  return shared;
}
