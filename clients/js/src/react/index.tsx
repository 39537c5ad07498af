/**
 * @meterline/client/react — hooks that show a customer's quota, usage and credits.
 *
 * The server stays authoritative: a hook shows, `consume` decides. Built on
 * `useSyncExternalStore` (React ≥ 18, no other dependency), SSR-safe (nothing is fetched
 * on the server; hooks render `loading` there).
 */
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from "react";
import { Meterline } from "../client.js";
import { MeterlineError } from "../errors.js";
import type { TokenGrant } from "../http.js";
import type { CheckResult, Credits, Entitlements, FeatureEntitlement, LimitState, MeterUsage, Quantity } from "../types.js";
import { LOADING, Store, type Snapshot } from "./store.js";

interface Context {
  client: Meterline;
  store: Store;
  customer: string | null;
  /** Why the customer could not be learnt from a token (getToken failed), if it could not. */
  customerError: Error | null;
  refreshInterval: number;
}

const MeterlineContext = createContext<Context | null>(null);

export interface MeterlineProviderProps {
  /** A client of your own; or `getToken` (and `baseUrl`) and the provider makes one. */
  client?: Meterline;
  getToken?: () => TokenGrant | Promise<TokenGrant>;
  baseUrl?: string;
  /** Whose numbers to show; default: the customer token's own customer. */
  customer?: string;
  /** Milliseconds between refreshes of what is shown (default 0: on demand and on focus). */
  refreshInterval?: number;
  children?: ReactNode;
}

export function MeterlineProvider(props: MeterlineProviderProps) {
  const { client: given, getToken, baseUrl, customer, refreshInterval = 0, children } = props;
  const [made] = useState(() => {
    if (given) return null;
    if (!getToken) throw new MeterlineError("MeterlineProvider needs a client or getToken", "no_credentials");
    return new Meterline({ getToken, baseUrl });
  });
  const client = given ?? made!;
  const [store] = useState(() => new Store());
  // With a customer token, whose numbers to show is the token's customer: learnt from the
  // first token (after render, so nothing is fetched during SSR).
  const [learnt, setLearnt] = useState<{ customer: string | null; error: Error | null }>(() => ({
    customer: client.customer,
    error: null,
  }));
  useEffect(() => {
    if (customer !== undefined || learnt.customer !== null) return;
    let live = true;
    client.resolveCustomer().then(
      (found) => live && setLearnt({ customer: found, error: null }),
      (error: Error) => live && setLearnt({ customer: null, error }),
    );
    return () => {
      live = false;
    };
  }, [client, customer, learnt.customer]);
  useEffect(
    () => () => {
      store.close();
      void made?.shutdown();
    },
    [store, made],
  );
  const value = useMemo(
    () => ({
      client,
      store,
      customer: customer ?? learnt.customer,
      customerError: customer === undefined ? learnt.error : null,
      refreshInterval,
    }),
    [client, store, customer, learnt, refreshInterval],
  );
  return <MeterlineContext.Provider value={value}>{children}</MeterlineContext.Provider>;
}

function useContextOrThrow(): Context {
  const found = useContext(MeterlineContext);
  if (!found) throw new MeterlineError("wrap your components in <MeterlineProvider>", "no_provider");
  return found;
}

/** The provider's client (for calls the hooks do not cover). */
export function useMeterline(): Meterline {
  return useContextOrThrow().client;
}

function whoOf(context: Context, customer: string | undefined): string | null {
  return customer ?? context.customer;
}

interface Read<T> extends Snapshot<T> {
  refresh: () => Promise<void>;
}

function useResource<T>(key: string | null, load: () => Promise<T>, intervalMs: number): Read<T> {
  const { store, customerError } = useContextOrThrow();
  const subscribe = useCallback(
    (listener: () => void) => (key === null ? () => undefined : store.subscribe(key, load, listener, intervalMs)),
    // `load` is keyed: a new closure with the same key fetches the same thing
    [store, key, intervalMs],
  );
  const snapshot = useSyncExternalStore(
    subscribe,
    () => (key === null ? LOADING : store.snapshot<T>(key)),
    () => LOADING,
  );
  const refresh = useCallback(() => (key === null ? Promise.resolve() : store.refresh(key)), [store, key]);
  return useMemo(() => {
    if (key === null && customerError) return { data: null, error: customerError, loading: false, refresh };
    return { ...snapshot, refresh };
  }, [snapshot, refresh, key, customerError]);
}

export interface EntitlementState {
  /** Whether the customer may use the feature now (as last read: the server decides). */
  allowed: boolean;
  /** Used in the tightest limit's window (or 0 without a limit). */
  used: number;
  /** Left in the tightest limit's window; null when unlimited. */
  remaining: number | null;
  /** The tightest limit's max; null when unlimited. */
  limit: number | null;
  /** When the tightest limit's window starts over. */
  resetsAt: Date | null;
  /** The feature as the server answered (every limit), null while loading or not in the plan. */
  feature: FeatureEntitlement | null;
  loading: boolean;
  error: Error | null;
  refresh: () => Promise<void>;
}

function tightest(limits: LimitState[]): LimitState | null {
  let best: LimitState | null = null;
  for (const limit of limits) {
    if (limit.remaining === null) continue;
    if (best === null || Number(limit.remaining) < Number(best.remaining)) best = limit;
  }
  return best;
}

export function entitlementOf(entitlements: Entitlements | null, feature: string): Omit<EntitlementState, "loading" | "error" | "refresh"> {
  const found = entitlements?.features.find((f) => f.feature === feature) ?? null;
  const limit = found ? tightest(found.limits) : null;
  const hardOut = found?.limits.some((l) => l.enforcement === "hard" && l.remaining !== null && Number(l.remaining) <= 0);
  return {
    allowed: Boolean(found && found.enabled && !found.exceeded && !hardOut),
    used: limit ? Number(limit.used) : 0,
    remaining: limit ? Number(limit.remaining) : null,
    limit: limit?.max != null ? Number(limit.max) : null,
    resetsAt: limit ? new Date(limit.resets_at) : null,
    feature: found,
  };
}

export interface ReadOptions {
  customer?: string;
  /** Milliseconds between refreshes (default: the provider's). */
  refreshInterval?: number;
}

/** The customer's standing for one feature: `{ allowed, used, remaining, limit, resetsAt, … }`. */
export function useEntitlement(feature: string, options: ReadOptions = {}): EntitlementState {
  const context = useContextOrThrow();
  const customer = whoOf(context, options.customer);
  const read = useResource<Entitlements>(
    customer === null ? null : `entitlements:${customer}`,
    () => context.client.entitlements(customer!),
    options.refreshInterval ?? context.refreshInterval,
  );
  return useMemo(
    () => ({ ...entitlementOf(read.data, feature), loading: read.loading, error: read.error, refresh: read.refresh }),
    [read, feature],
  );
}

export interface UsageOptions extends ReadOptions {
  window?: "minute" | "hour" | "day" | "month";
  from?: string | Date;
  to?: string | Date;
}

export interface UsageState extends Read<MeterUsage> {
  /** The sum of the windows' values (what the meter shows over the whole range). */
  total: number;
  rows: MeterUsage["data"];
}

/** A meter's usage for the customer, per window (`GET /v1/meters/{meter}/usage`). */
export function useUsage(meter: string, options: UsageOptions = {}): UsageState {
  const context = useContextOrThrow();
  const customer = whoOf(context, options.customer);
  const from = options.from instanceof Date ? options.from.toISOString() : options.from;
  const to = options.to instanceof Date ? options.to.toISOString() : options.to;
  const read = useResource<MeterUsage>(
    customer === null ? null : `usage:${customer}:${meter}:${options.window ?? ""}:${from ?? ""}:${to ?? ""}`,
    () => context.client.meterUsage(meter, { customer: customer!, window: options.window, from, to }),
    options.refreshInterval ?? context.refreshInterval,
  );
  return useMemo(() => {
    const rows = read.data?.data ?? [];
    return { ...read, rows, total: rows.reduce((sum, row) => sum + Number(row.value), 0) };
  }, [read]);
}

export interface CreditsState extends Read<Credits> {
  balance: number | null;
}

/** The customer's credit balance and live grants. */
export function useCredits(options: ReadOptions = {}): CreditsState {
  const context = useContextOrThrow();
  const customer = whoOf(context, options.customer);
  const read = useResource<Credits>(
    customer === null ? null : `credits:${customer}`,
    () => context.client.credits(customer!),
    options.refreshInterval ?? context.refreshInterval,
  );
  return useMemo(() => ({ ...read, balance: read.data ? Number(read.data.balance) : null }), [read]);
}

export interface TrackOptions {
  quantity?: Quantity;
  properties?: Record<string, unknown>;
  customer?: string;
}

/** Use a feature: a consume (check and record in one step, the server deciding), then
 * what the hooks show of that customer is refreshed. Resolves to the check's answer
 * (`allowed: false` when refused); a failure to reach the server rejects. */
export function useTrack(): (feature: string, options?: TrackOptions) => Promise<CheckResult> {
  const context = useContextOrThrow();
  return useCallback(
    async (feature, options = {}) => {
      const customer = whoOf(context, options.customer);
      if (customer === null) throw new MeterlineError("name the customer", "customer_required");
      const result = await consumeQuietly(context.client, customer, feature, options);
      await Promise.all([
        context.store.refreshMatching(`entitlements:${customer}`),
        context.store.refreshMatching(`credits:${customer}`),
        context.store.refreshMatching(`usage:${customer}:`),
      ]);
      return result;
    },
    [context],
  );
}

async function consumeQuietly(client: Meterline, customer: string, feature: string, options: TrackOptions): Promise<CheckResult> {
  try {
    return await client.consume({ customer, feature, quantity: options.quantity, properties: options.properties });
  } catch (error) {
    if (error instanceof MeterlineError && "result" in error && error.result) return error.result as CheckResult;
    throw error;
  }
}

export interface UsageTracking {
  /** An API call by `userId`: a consume of the `api_call` feature with the endpoint and method. */
  trackAPICall: (userId: string, endpoint: string, method: string) => Promise<CheckResult>;
  /** `value` of `feature` by `userId`: a consume. */
  trackFeatureUsage: (
    userId: string,
    feature: string,
    value?: Quantity,
    properties?: Record<string, unknown>,
  ) => Promise<CheckResult>;
}

/** The hook apps moving from a hand-rolled tracker call; each call is a consume (so the
 * limits hold) followed by a refresh of what the hooks show. */
export function useUsageTracking(options: { apiCallFeature?: string } = {}): UsageTracking {
  const track = useTrack();
  const apiCall = options.apiCallFeature ?? "api_call";
  return useMemo(
    () => ({
      trackAPICall: (userId, endpoint, method) =>
        track(apiCall, { customer: userId, properties: { endpoint, method: method.toUpperCase() } }),
      trackFeatureUsage: (userId, feature, value, properties) =>
        track(feature, { customer: userId, quantity: value, properties }),
    }),
    [track, apiCall],
  );
}

export type { Snapshot } from "./store.js";
