/**
 * @meterline/client — Meterline's JavaScript/TypeScript client (no runtime dependencies).
 * React hooks: `@meterline/client/react`.
 */
export { Meterline } from "./client.js";
export type { CheckParams, MeterlineOptions, MeterUsageParams, Page, ReserveParams } from "./client.js";
export { initUsageTracking, trackUsage, usageTracker } from "./aliases.js";
export type { InitUsageTrackingOptions, TrackUsageParams } from "./aliases.js";
export {
  ApiError,
  BufferFullError,
  ConnectionError,
  InsufficientCreditsError,
  InvalidQuantityError,
  LimitExceededError,
  MeterlineError,
} from "./errors.js";
export { VERSION, backoff, type TokenGrant } from "./http.js";
export type * from "./types.js";
export type { components, paths } from "./generated/openapi.js";
