/** `Meterline`: the API's verbs over `fetch`, for Node ≥ 20 and browsers. */
import { InsufficientCreditsError, LimitExceededError, MeterlineError } from "./errors.js";
import { Http, newId, validQuantity, type AuthOptions, type RequestOptions } from "./http.js";
import { Sender } from "./sender.js";
import type {
  CheckResult,
  Credits,
  Customer,
  CustomerCreate,
  Entitlements,
  Meter,
  MeterCreate,
  MeterUsage,
  Plan,
  PlanCreate,
  Quantity,
  Rejection,
  Reservation,
  SentEvent,
  Subscription,
  TokenCreated,
  TrackEvent,
  Usage,
  IngestResult,
  Warning,
} from "./types.js";

export interface MeterlineOptions extends AuthOptions {
  /** Where Meterline listens (default http://127.0.0.1:8000). */
  baseUrl?: string;
  /** Events per request (default 500, at most 10,000). */
  batchSize?: number;
  /** Milliseconds between sends of whatever is queued (default 1,000). */
  flushInterval?: number;
  /** Events the queue holds before `track` throws `BufferFullError` (default 10,000). */
  maxQueueSize?: number;
  /** Retries of reads and checks; and of a batch once `shutdown` has begun (default 3). */
  maxRetries?: number;
  /** Milliseconds per request attempt (default 10,000). */
  timeout?: number;
  /** Told of every event the server refused (they are also kept in `rejected`). */
  onError?: (error: MeterlineError, rejected: Rejection[]) => void;
  /** Told of accepted events no meter counts (also kept, the latest 1,000, in `warnings`). */
  onWarning?: (warnings: Warning[]) => void;
  /** In browsers, send the queue with `keepalive` when the page is hidden or left (default true). */
  flushOnPageHide?: boolean;
  /** A `fetch` of your own (default: the global one). */
  fetch?: typeof fetch;
}

export interface CheckParams {
  /** The customer's external_id; with a customer token, the token's customer by default. */
  customer?: string;
  feature: string;
  quantity?: Quantity;
  properties?: Record<string, unknown>;
  subject?: string;
  /** A consume's event id (made once here when absent, so a retry counts once). */
  id?: string;
}

export interface ReserveParams extends Omit<CheckParams, "id"> {
  quantity: Quantity;
  /** Seconds the hold lives unless settled or released (default 300). */
  ttlSeconds?: number;
}

export interface MeterUsageParams {
  customer?: string;
  window?: "minute" | "hour" | "day" | "month";
  from?: string | Date;
  to?: string | Date;
  timezone?: string;
  groupBy?: string[];
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

const iso = (value: string | Date | undefined) => (value instanceof Date ? value.toISOString() : value);
const path = (...parts: string[]) => parts.map(encodeURIComponent).join("/");

export class Meterline {
  /** Events the server refused (or that could not be sent before `shutdown`), with why. */
  readonly rejected: Rejection[] = [];
  /** Accepted events some meter of their type does not count, and why (the latest 1,000). */
  readonly warnings: Warning[] = [];
  private readonly http: Http;
  private readonly sender: Sender;
  private readonly onError?: MeterlineOptions["onError"];
  private readonly onWarning?: MeterlineOptions["onWarning"];
  private readonly detach: () => void;

  constructor(options: MeterlineOptions) {
    const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.http = new Http({
      apiKey: options.apiKey,
      token: options.token,
      getToken: options.getToken,
      baseUrl: options.baseUrl ?? "http://127.0.0.1:8000",
      timeout: options.timeout ?? 10_000,
      maxRetries: options.maxRetries ?? 3,
      fetch: fetchImpl,
    });
    this.onError = options.onError;
    this.onWarning = options.onWarning;
    this.sender = new Sender(
      this.http,
      {
        batchSize: Math.min(options.batchSize ?? 500, 10_000),
        flushInterval: options.flushInterval ?? 1_000,
        maxQueueSize: options.maxQueueSize ?? 10_000,
        maxRetries: options.maxRetries ?? 3,
      },
      (rejections, error) => this.refused(rejections, error),
      (warnings) => this.warned(warnings),
    );
    this.detach = this.attach(options.flushOnPageHide ?? true);
  }

  /** The customer calls default to: a customer token's own (null with an API key, or
   * before `getToken` was first called: see `resolveCustomer`). */
  get customer(): string | null {
    return this.http.tokenCustomer;
  }

  /** The customer token's customer, calling `getToken` first if no token is there yet. */
  async resolveCustomer(): Promise<string | null> {
    if (!this.http.usesApiKey && this.http.tokenCustomer === null) await this.http.credential();
    return this.http.tokenCustomer;
  }

  private refused(rejections: Rejection[], error: MeterlineError): void {
    this.rejected.push(...rejections);
    if (this.onError) this.onError(error, rejections);
    else console.error(`meterline: ${rejections.length} event(s) refused: ${error.message}`);
  }

  private warned(warnings: Warning[]): void {
    this.warnings.push(...warnings);
    this.warnings.splice(0, Math.max(0, this.warnings.length - 1_000));
    if (this.onWarning) this.onWarning(warnings);
    else console.warn(`meterline: ${warnings.length} accepted event(s) counted by no meter: ${warnings[0]!.message}`);
  }

  /** Browsers: flush with keepalive on pagehide / hidden; Node: flush before exit. */
  private attach(onPageHide: boolean): () => void {
    const w = globalThis as unknown as {
      addEventListener?: (type: string, fn: () => void) => void;
      removeEventListener?: (type: string, fn: () => void) => void;
      document?: { visibilityState?: string };
    };
    if (typeof w.document !== "undefined" && typeof w.addEventListener === "function") {
      if (!onPageHide) return () => undefined;
      const hidden = () => {
        if (w.document?.visibilityState === "hidden") this.sender.flushOnExit();
      };
      const left = () => this.sender.flushOnExit();
      w.addEventListener("pagehide", left);
      w.addEventListener("visibilitychange", hidden);
      return () => {
        w.removeEventListener?.("pagehide", left);
        w.removeEventListener?.("visibilitychange", hidden);
      };
    }
    const proc = (globalThis as { process?: NodeJS.Process }).process;
    if (proc && typeof proc.once === "function") {
      const beforeExit = () => {
        if (this.sender.size > 0) void this.sender.flush();
      };
      proc.on("beforeExit", beforeExit);
      return () => proc.off("beforeExit", beforeExit);
    }
    return () => undefined;
  }

  /** The customer named, or the customer token's own (fetching a token first if need be). */
  private async who(customer: string | undefined): Promise<string> {
    if (customer === undefined && !this.http.usesApiKey && this.http.tokenCustomer === null) {
      await this.http.credential();
    }
    const found = customer ?? this.http.tokenCustomer;
    if (!found) throw new MeterlineError("name the customer (only a customer token implies one)", "customer_required");
    return found;
  }

  // -- usage -------------------------------------------------------------------------------

  /** Queue an event for the batching sender; returns its id (made here, once). */
  track(event: TrackEvent): string {
    const sent: SentEvent = {
      id: event.id ?? newId(),
      type: event.type,
      customer: event.customer,
      quantity: validQuantity(event.quantity ?? 1),
      timestamp: iso(event.timestamp) ?? new Date().toISOString(),
    };
    if (event.properties) sent.properties = event.properties;
    if (event.subject !== undefined) sent.subject = event.subject;
    this.sender.add(sent);
    return sent.id;
  }

  /** Resolves once every event tracked so far is sent (or refused, see `rejected`). */
  flush(): Promise<void> {
    return this.sender.flush();
  }

  /** Flush (a batch that cannot be sent is retried `maxRetries` times, then reported as
   * `not_sent`), then stop: `track` throws afterwards. */
  async shutdown(): Promise<void> {
    this.detach();
    await this.sender.shutdown();
  }

  /** Send events now (not queued); they carry ids, so this is retried safely. */
  async record(...events: TrackEvent[]): Promise<IngestResult> {
    const body = events.map((e) => ({
      ...e,
      id: e.id ?? newId(),
      quantity: validQuantity(e.quantity ?? 1),
      timestamp: iso(e.timestamp) ?? new Date().toISOString(),
    }));
    return this.http.request("POST", "/v1/events", { body: { events: body }, retry: true });
  }

  /** May the customer use `quantity` more of `feature` now? (Nothing is recorded.) */
  async check(params: CheckParams): Promise<CheckResult> {
    return this.decide(params, false);
  }

  /** Check and record in one step; throws `LimitExceededError` or `InsufficientCreditsError`. */
  async consume(params: CheckParams): Promise<CheckResult> {
    const result = await this.decide(params, true);
    if (result.allowed) return result;
    if (result.reason === "insufficient_credits") throw new InsufficientCreditsError(result);
    throw new LimitExceededError(result);
  }

  private async decide(params: CheckParams, consume: boolean): Promise<CheckResult> {
    const body: Record<string, unknown> = {
      customer: await this.who(params.customer),
      feature: params.feature,
      quantity: validQuantity(params.quantity ?? 1),
      consume,
    };
    if (consume) body.id = params.id ?? newId();
    if (params.properties) body.properties = params.properties;
    if (params.subject !== undefined) body.subject = params.subject;
    return this.http.request("POST", "/v1/check", { body, retry: true });
  }

  /** Hold allowance and credits for work whose size is known afterwards. */
  async reserve(params: ReserveParams): Promise<Reservation> {
    const body: Record<string, unknown> = {
      customer: await this.who(params.customer),
      feature: params.feature,
      quantity: validQuantity(params.quantity),
      ttl_seconds: params.ttlSeconds ?? 300,
    };
    if (params.properties) body.properties = params.properties;
    if (params.subject !== undefined) body.subject = params.subject;
    return this.http.request("POST", "/v1/reservations", { body });
  }

  /** Record what a hold actually used (lower or higher than held) and free the rest. */
  async settle(reservationId: string, quantity: Quantity): Promise<Reservation> {
    return this.http.request("POST", `/v1/reservations/${path(reservationId)}/settle`, {
      body: { quantity: validQuantity(quantity) },
      retry: true,
    });
  }

  release(reservationId: string): Promise<Reservation> {
    return this.http.request("POST", `/v1/reservations/${path(reservationId)}/release`, { body: {} });
  }

  // -- reads (an API key with `read`, or the customer's own token) --------------------------

  async usage(customer?: string): Promise<Usage> {
    return this.get(`/v1/customers/${path(await this.who(customer))}/usage`);
  }

  async entitlements(customer?: string): Promise<Entitlements> {
    return this.get(`/v1/customers/${path(await this.who(customer))}/entitlements`);
  }

  async credits(customer?: string): Promise<Credits> {
    return this.get(`/v1/customers/${path(await this.who(customer))}/credits`);
  }

  /** A meter's value per window; a customer token reads its own customer's only. */
  async meterUsage(meter: string, params: MeterUsageParams = {}): Promise<MeterUsage> {
    const customer = params.customer ?? (this.http.usesApiKey ? undefined : await this.who(undefined));
    return this.get(`/v1/meters/${path(meter)}/usage`, {
      customer,
      window: params.window,
      from: iso(params.from),
      to: iso(params.to),
      timezone: params.timezone,
      group_by: params.groupBy,
    });
  }

  // -- admin (an API key with `admin`; meter reads also `read` or `ingest`) -----------------

  createCustomer(body: CustomerCreate): Promise<Customer> {
    return this.post("/v1/customers", body);
  }

  getCustomer(externalId: string): Promise<Customer> {
    return this.get(`/v1/customers/${path(externalId)}`);
  }

  listCustomers(page: { limit?: number; after?: string } = {}): Promise<Page<Customer>> {
    return this.get("/v1/customers", page);
  }

  createMeter(body: MeterCreate): Promise<Meter> {
    return this.post("/v1/meters", body);
  }

  getMeter(key: string): Promise<Meter> {
    return this.get(`/v1/meters/${path(key)}`);
  }

  listMeters(page: { limit?: number; after?: string } = {}): Promise<Page<Meter>> {
    return this.get("/v1/meters", page);
  }

  createPlan(body: PlanCreate): Promise<Plan> {
    return this.post("/v1/plans", body);
  }

  getPlan(key: string): Promise<Plan> {
    return this.get(`/v1/plans/${path(key)}`);
  }

  listPlans(page: { limit?: number; after?: string } = {}): Promise<Page<Plan>> {
    return this.get("/v1/plans", page);
  }

  subscribe(body: { customer: string; plan: string; [field: string]: unknown }): Promise<Subscription> {
    return this.post("/v1/subscriptions", body);
  }

  /** A short-lived token for one customer's browser (give its answer to `getToken`). */
  createToken(customer: string, ttlSeconds?: number): Promise<TokenCreated> {
    return this.post(`/v1/customers/${path(customer)}/tokens`, ttlSeconds ? { ttl_seconds: ttlSeconds } : {});
  }

  async grantCredits(customer: string, body: { amount: Quantity; [field: string]: unknown }): Promise<unknown> {
    return this.post(`/v1/customers/${path(customer)}/credits/grants`, {
      ...body,
      amount: validQuantity(body.amount, "amount"),
    });
  }

  /** Any other route: `GET` with query parameters, retried safely. */
  get<T>(route: string, query?: RequestOptions["query"]): Promise<T> {
    return this.http.request("GET", route, { query, retry: true });
  }

  /** Any other route: `POST` a JSON body (not retried). */
  post<T>(route: string, body: unknown): Promise<T> {
    return this.http.request("POST", route, { body });
  }
}
