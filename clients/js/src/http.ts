/** Requests: authentication (API key or customer token), retries, problem answers. */
import { ConnectionError, errorFor, InvalidQuantityError, MeterlineError } from "./errors.js";
import type { Problem, Quantity } from "./types.js";

export const VERSION = "0.1.0";
const MAX_BACKOFF_MS = 30_000;
const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);

/** What `getToken` may answer: the token, or the server's token response as it is. */
export type TokenGrant = string | { token: string; expires_at?: string | null };

export interface AuthOptions {
  /** An API key (`ml_…`): for servers only; CORS never answers a request made with one. */
  apiKey?: string;
  /** A customer token (`mlct_…`) for a browser; it cannot be renewed without `getToken`. */
  token?: string;
  /** Fetches a customer token from your server; called again before the token expires. */
  getToken?: () => TokenGrant | Promise<TokenGrant>;
}

export interface HttpOptions extends AuthOptions {
  baseUrl: string;
  /** Milliseconds per request attempt (default 10,000). */
  timeout: number;
  /** Retries of safe requests (reads, checks and events with ids) on network errors, 5xx, 429. */
  maxRetries: number;
  fetch: typeof fetch;
}

/** Milliseconds before retry `attempt`: doubling from 250 ms up to 30 s, jittered; never
 * sooner than the server's `Retry-After` asks. */
export function backoff(attempt: number, retryAfterMs: number | null = null): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt);
  const wait = ceiling * (0.5 + Math.random() / 2);
  return retryAfterMs === null ? wait : Math.max(wait, Math.min(retryAfterMs, MAX_BACKOFF_MS));
}

export function retryAfterMs(response: Response): number | null {
  const value = response.headers.get("retry-after");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function isRetryable(status: number): boolean {
  return RETRY_STATUSES.has(status);
}

/** `value` as JSON carries it, or `InvalidQuantityError` when the server would refuse it. */
export function validQuantity(value: Quantity, what = "quantity"): Quantity {
  const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
  if (typeof number !== "number" || !Number.isFinite(number)) {
    throw new InvalidQuantityError(`${what} must be a finite number, not ${JSON.stringify(value)}`);
  }
  if (number < 0) {
    throw new InvalidQuantityError(`${what} must not be negative (got ${value}): usage is never negative`);
  }
  return value;
}

/** A random id made once per event: `evt_` and 32 hex digits (works outside secure contexts). */
export function newId(prefix = "evt_"): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

interface TokenClaims {
  customer: string | null;
  expiresAt: number | null; // ms since the epoch
}

/** What a customer token says about itself (`mlct_<base64url JSON>.<signature>`). */
export function tokenClaims(token: string): TokenClaims {
  try {
    const payload = token.slice("mlct_".length).split(".")[0] ?? "";
    const base64 = payload.replaceAll("-", "+").replaceAll("_", "/");
    const claims = JSON.parse(globalThis.atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)));
    return {
      customer: typeof claims.c === "string" ? claims.c : null,
      expiresAt: typeof claims.e === "number" ? claims.e * 1000 : null,
    };
  } catch {
    return { customer: null, expiresAt: null };
  }
}

async function problemOf(response: Response): Promise<Problem> {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    return typeof body === "object" && body !== null ? body : { detail: text };
  } catch {
    return { detail: text || response.statusText, code: `http_${response.status}` };
  }
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | string[] | undefined | null>;
  /** Safe to repeat (reads, and writes carrying an id): retried on network errors, 5xx, 429. */
  retry?: boolean;
  keepalive?: boolean;
}

export class Http {
  private token: string | null;
  private expiresAt: number | null;
  private refreshing: Promise<string> | null = null;

  constructor(readonly options: HttpOptions) {
    if (!options.apiKey && !options.token && !options.getToken) {
      throw new MeterlineError("pass apiKey (servers), or token / getToken (browsers)", "no_credentials");
    }
    this.token = options.token ?? null;
    this.expiresAt = this.token ? tokenClaims(this.token).expiresAt : null;
  }

  /** The customer a customer token is for (null with an API key, or before a token). */
  get tokenCustomer(): string | null {
    return this.token ? tokenClaims(this.token).customer : null;
  }

  get usesApiKey(): boolean {
    return Boolean(this.options.apiKey);
  }

  /** The customer token to send, fetched or renewed first when it is (nearly) expired. */
  async credential(force = false): Promise<string> {
    if (this.options.apiKey) return this.options.apiKey;
    const stale =
      this.token === null ||
      (this.expiresAt !== null && Date.now() > this.expiresAt - this.margin());
    if (!force && !stale && this.token) return this.token;
    if (!this.options.getToken) {
      if (this.token) return this.token; // nothing to renew it with: the server says 401
      throw new MeterlineError("no customer token", "no_credentials");
    }
    if (!this.refreshing) {
      const getToken = this.options.getToken;
      this.refreshing = (async () => {
        const grant = await getToken();
        const token = typeof grant === "string" ? grant : grant.token;
        const given = typeof grant === "string" ? null : grant.expires_at;
        this.token = token;
        this.expiresAt = given ? Date.parse(given) : tokenClaims(token).expiresAt;
        return token;
      })().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** Renewed this long before expiry: a tenth of what is left, at most a minute. */
  private margin(): number {
    return this.expiresAt === null ? 0 : Math.min(60_000, Math.max(0, (this.expiresAt - Date.now()) / 10));
  }

  url(path: string, query?: RequestOptions["query"]): string {
    const url = new URL(this.options.baseUrl.replace(/\/+$/, "") + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(name, String(one));
    }
    return url.toString();
  }

  /** One attempt; network failures become `ConnectionError`. */
  async send(method: string, path: string, options: RequestOptions = {}, forceToken = false): Promise<Response> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${await this.credential(forceToken)}`,
      Accept: "application/json",
    };
    if (typeof window === "undefined") headers["User-Agent"] = `meterline-js/${VERSION}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await this.options.fetch(this.url(path, options.query), {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        keepalive: options.keepalive,
        signal: options.keepalive ? undefined : AbortSignal.timeout(this.options.timeout),
      });
    } catch (error) {
      throw new ConnectionError(`${this.options.baseUrl}: ${(error as Error).message}`);
    }
  }

  /** A request answered with its JSON body, or its problem thrown as a typed error. An
   * expired customer token is renewed once through `getToken`. */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const attempts = options.retry ? this.options.maxRetries + 1 : 1;
    let renewed = false;
    for (let attempt = 0; ; attempt++) {
      let wait: number | null = null;
      let response: Response;
      try {
        response = await this.send(method, path, options, renewed);
      } catch (error) {
        if (!(error instanceof ConnectionError) || attempt + 1 >= attempts) throw error;
        await sleep(backoff(attempt));
        continue;
      }
      if (response.ok) {
        return (response.status === 204 ? undefined : await response.json()) as T;
      }
      if (isRetryable(response.status) && attempt + 1 < attempts) {
        wait = retryAfterMs(response);
        await response.body?.cancel();
        await sleep(backoff(attempt, wait));
        continue;
      }
      const problem = await problemOf(response);
      const expired = problem.code === "token_expired" || problem.code === "invalid_token";
      if (response.status === 401 && expired && this.options.getToken && !renewed) {
        renewed = true;
        continue;
      }
      throw errorFor(response.status, problem);
    }
  }
}

