/**
 * What the client throws, in one tree (mirroring the Python client):
 *
 *     MeterlineError              every error; `.code` is the server's problem code or a fixed one
 *     ├── ApiError                any problem+json answer: `.status`, `.problem`
 *     ├── LimitExceededError      a consume denied by a limit (`.result`: the check's answer)
 *     ├── InsufficientCreditsError  402, or a consume denied for credits (`.result`)
 *     ├── InvalidQuantityError    a negative or non-numeric quantity, refused before sending
 *     ├── ConnectionError         the server could not be reached (after the retries)
 *     └── BufferFullError         `track` with a full queue (nothing is dropped silently)
 */
import type { CheckResult, Problem } from "./types.js";

export class MeterlineError extends Error {
  /** A stable snake_case code: the server's problem `code`, or this client's own. */
  readonly code: string;

  constructor(message: string, code: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The server answered with a problem (RFC 9457): `.status`, `.code`, `.problem`. */
export class ApiError extends MeterlineError {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(`${status} ${problem.code ?? "unknown"}: ${problem.detail ?? problem.title ?? ""}`, problem.code ?? "unknown");
    this.status = status;
    this.problem = problem;
  }
}

/** A consume denied by a limit (or for another reason than credits: see `.reason`). */
export class LimitExceededError extends MeterlineError {
  readonly result: CheckResult;
  readonly reason: string;

  constructor(result: CheckResult) {
    super(`${result.feature}: ${result.reason.replaceAll("_", " ")}`, "limit_exceeded");
    this.result = result;
    this.reason = result.reason;
  }
}

/** Not enough credits: a consume denied for credits, or a 402 answer. */
export class InsufficientCreditsError extends MeterlineError {
  readonly result: CheckResult | null;
  readonly problem: Problem | null;

  constructor(result: CheckResult | null, problem: Problem | null = null) {
    super(`${result?.feature ?? problem?.detail ?? "credits"}: insufficient credits`, "insufficient_credits");
    this.result = result;
    this.problem = problem;
  }
}

export class InvalidQuantityError extends MeterlineError {
  constructor(message: string) {
    super(message, "invalid_quantity");
  }
}

export class ConnectionError extends MeterlineError {
  constructor(message: string) {
    super(message, "connection_failed");
  }
}

export class BufferFullError extends MeterlineError {
  constructor(size: number) {
    super(`${size} events wait to be sent`, "buffer_full");
  }
}

/** The error for a problem answer. */
export function errorFor(status: number, problem: Problem): MeterlineError {
  if (status === 402) return new InsufficientCreditsError(null, problem);
  return new ApiError(status, problem);
}
