// A proxy in front of the real server that answers every `every`-th request (and the
// first `first` ones) with 429 and `Retry-After`, forwarding the rest; it records when
// each request came and how it was answered.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export interface Seen {
  at: number;
  status: number;
  path: string;
}

export class Storm {
  readonly seen: Seen[] = [];
  private server: Server | null = null;
  port = 0;

  constructor(
    private readonly upstream: string,
    private readonly retryAfterSeconds: number,
    private readonly first: number,
    private readonly every: number,
  ) {}

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((request, response) => void this.answer(request, response));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    this.port = typeof address === "object" && address ? address.port : 0;
  }

  private async answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const n = this.seen.length;
    if (n < this.first || (this.every > 0 && n % this.every === 0)) {
      this.seen.push({ at: Date.now(), status: 429, path: request.url ?? "" });
      response.writeHead(429, {
        "Retry-After": String(this.retryAfterSeconds),
        "Content-Type": "application/problem+json",
      });
      response.end(JSON.stringify({ status: 429, code: "rate_limited", title: "Rate limited" }));
      return;
    }
    this.seen.push({ at: Date.now(), status: 200, path: request.url ?? "" });
    const headers = Object.fromEntries(
      Object.entries(request.headers).filter(([k]) => !["host", "connection", "content-length"].includes(k)),
    ) as Record<string, string>;
    const upstream = await fetch(this.upstream + request.url, {
      method: request.method,
      headers,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
    });
    const body = Buffer.from(await upstream.arrayBuffer());
    response.writeHead(upstream.status, { "Content-Type": upstream.headers.get("content-type") ?? "" });
    response.end(body);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
