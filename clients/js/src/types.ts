import type { components } from "./generated/openapi.js";

/** Every request and response body of the API, generated from its OpenAPI document. */
export type Schemas = components["schemas"];

export type CheckResult = Schemas["CheckResponse"];
export type Entitlements = Schemas["EntitlementsRead"];
export type FeatureEntitlement = Schemas["FeatureEntitlement"];
export type LimitState = Schemas["LimitRead"];
export type Usage = Schemas["UsageRead"];
export type MeterUsage = Schemas["UsageResponse"];
export type Credits = Schemas["meterline__credits__schemas__CreditsRead"];
export type Reservation = Schemas["ReservationRead"];
export type IngestResult = Schemas["IngestResult"];
export type Customer = Schemas["CustomerRead"];
export type CustomerCreate = Schemas["CustomerCreate"];
export type Meter = Schemas["MeterRead"];
export type MeterCreate = Schemas["MeterCreate"];
export type Plan = Schemas["PlanRead"];
export type PlanCreate = Schemas["PlanCreate"];
export type Subscription = Schemas["SubscriptionRead"];
export type TokenCreated = Schemas["TokenCreated"];

/** A quantity: a number, or a decimal string for exact values ("0.000001"). */
export type Quantity = number | string;

/** An application/problem+json body. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errors?: { field: string; code: string; message: string }[];
  [key: string]: unknown;
}

/** One usage event as `track` takes it. */
export interface TrackEvent {
  type: string;
  customer: string;
  quantity?: Quantity;
  properties?: Record<string, unknown>;
  /** The idempotency key; made on the client (`evt_` + random) when absent. */
  id?: string;
  subject?: string;
  /** RFC 3339 with an offset, or a Date; default: now. */
  timestamp?: string | Date;
}

/** An event as sent: id and timestamp made once, so a retry never counts twice. */
export interface SentEvent {
  id: string;
  type: string;
  customer: string;
  quantity: Quantity;
  timestamp: string;
  properties?: Record<string, unknown>;
  subject?: string;
}

/** An accepted event some meter of its type does not count (`unmetered`, `filtered_out`,
 * `missing_value`, `invalid_value`): stored, but counted by nothing until a meter would. */
export interface Warning {
  event: SentEvent;
  code: string;
  message: string;
}

/** An event the server refused (or that could not be sent before shutdown), with why. */
export interface Rejection {
  event: SentEvent;
  code: string;
  message: string;
}
