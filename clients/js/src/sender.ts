/**
 * The event queue: `track` adds to a bounded in-memory queue; batches go out when
 * `batchSize` events wait or every `flushInterval`. A batch leaves the queue only once the
 * server has answered for it, so nothing is lost to a failed request; retries (network
 * errors, 5xx, 429 with `Retry-After`) go on with backoff until the server answers, and
 * since ids are made once, a batch sent twice counts once. Refused events are reported
 * (`onRejected`), never dropped silently.
 */
import { BufferFullError, ConnectionError, MeterlineError, errorFor } from "./errors.js";
import { backoff, isRetryable, retryAfterMs, sleep, type Http } from "./http.js";
import type { IngestResult, Problem, Rejection, SentEvent, Warning } from "./types.js";

export interface SenderOptions {
  batchSize: number;
  flushInterval: number;
  maxQueueSize: number;
  maxRetries: number;
}

const KEEPALIVE_BYTES = 60_000; // browsers cap keepalive bodies at 64 KiB per page

export class Sender {
  private queue: SentEvent[] = [];
  private pumping: Promise<void> | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private closing = false;

  constructor(
    private readonly http: Http,
    private readonly options: SenderOptions,
    private readonly onRejected: (rejections: Rejection[], error: MeterlineError) => void,
    private readonly onWarnings: (warnings: Warning[]) => void,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  add(event: SentEvent): void {
    if (this.closing) throw new MeterlineError("the client is shut down", "shut_down");
    if (this.queue.length >= this.options.maxQueueSize) throw new BufferFullError(this.options.maxQueueSize);
    this.queue.push(event);
    if (this.queue.length >= this.options.batchSize) void this.pump();
    else this.startTimer();
  }

  private startTimer(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      if (this.queue.length > 0 && this.pumping === null) void this.pump();
    }, this.options.flushInterval);
    // In Node the timer does not keep the process alive (exit flushes instead).
    (this.timer as { unref?: () => void }).unref?.();
  }

  private pump(): Promise<void> {
    if (this.pumping === null) {
      this.pumping = this.drain().finally(() => {
        this.pumping = null;
      });
    }
    return this.pumping;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.options.batchSize);
      await this.deliver(batch);
      const sent = new Set(batch.map((e) => e.id));
      this.queue = this.queue.filter((e) => !sent.has(e.id));
    }
  }

  private async deliver(batch: SentEvent[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      let wait: number | null = null;
      let failure: MeterlineError;
      try {
        const response = await this.http.send("POST", "/v1/events", { body: { events: batch } });
        if (response.ok) {
          this.noteRefusals(batch, (await response.json()) as IngestResult);
          return;
        }
        if (!isRetryable(response.status)) {
          const problem = (await response.json().catch(() => ({}))) as Problem;
          const error = errorFor(response.status, problem);
          this.onRejected(
            batch.map((event) => ({ event, code: error.code, message: error.message })),
            error,
          );
          return;
        }
        wait = retryAfterMs(response);
        await response.body?.cancel();
        failure = new MeterlineError(`answered ${response.status}`, `http_${response.status}`);
      } catch (error) {
        if (!(error instanceof ConnectionError)) throw error;
        failure = error;
      }
      if (this.closing && attempt >= this.options.maxRetries) {
        const error = new MeterlineError(`${batch.length} events not sent before shutdown: ${failure.message}`, "not_sent");
        this.onRejected(
          batch.map((event) => ({ event, code: "not_sent", message: error.message })),
          error,
        );
        return;
      }
      await sleep(backoff(attempt, wait));
    }
  }

  private noteRefusals(batch: SentEvent[], outcome: IngestResult): void {
    const warnings = outcome.warnings ?? [];
    if (warnings.length > 0) this.onWarnings(warnings.map((w) => ({ event: batch[w.index]!, code: w.code, message: w.message })));
    if (outcome.errors.length === 0) return;
    const rejections = outcome.errors.map((e) => ({ event: batch[e.index]!, code: e.code, message: e.message }));
    this.onRejected(rejections, new MeterlineError(rejections[0]!.message, rejections[0]!.code));
  }

  /** Resolves once every event queued so far is sent (or refused). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.pumping !== null) await this.pump();
  }

  /** Flushes (giving up after `maxRetries` more attempts per batch), then stops. */
  async shutdown(): Promise<void> {
    this.closing = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }

  /** For a page being hidden or left: every queued event in `keepalive` requests (which
   * outlive the page), without waiting; what the server acknowledges leaves the queue. */
  flushOnExit(): void {
    let chunk: SentEvent[] = [];
    let bytes = 0;
    const go = (events: SentEvent[]) => {
      if (events.length === 0) return;
      this.http
        .send("POST", "/v1/events", { body: { events }, keepalive: true })
        .then((response) => {
          if (!response.ok) return;
          const sent = new Set(events.map((e) => e.id));
          this.queue = this.queue.filter((e) => !sent.has(e.id));
        })
        .catch(() => undefined); // still queued: sent by the next flush (ids make it count once)
    };
    for (const event of this.queue) {
      const size = JSON.stringify(event).length + 1;
      if (bytes + size > KEEPALIVE_BYTES) {
        go(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(event);
      bytes += size;
    }
    go(chunk);
  }
}
