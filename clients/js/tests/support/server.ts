// A real `meterline serve` for the tests: started on a free port with a known admin key,
// restartable on the same database, stopped at the end.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
// @ts-expect-error: a plain .mjs helper shared with the scripts
import { meterlineBin } from "../../scripts/meterline-bin.mjs";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export const newKey = () => "ml_" + randomBytes(32).toString("base64url");

export interface ServerOptions {
  env?: Record<string, string>;
  demo?: boolean;
}

export class MeterlineServer {
  private process: ChildProcess | null = null;
  readonly key = newKey();
  readonly databaseUrl: string;
  output = "";

  private constructor(
    readonly port: number,
    private readonly options: ServerOptions,
  ) {
    this.databaseUrl = `sqlite:///${join(mkdtempSync(join(tmpdir(), "meterline-js-")), "m.db")}`;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(options: ServerOptions = {}): Promise<MeterlineServer> {
    const server = new MeterlineServer(await freePort(), options);
    await server.begin();
    return server;
  }

  async begin(): Promise<void> {
    const args = ["serve", "--port", String(this.port), "--database-url", this.databaseUrl];
    if (this.options.demo) args.push("--demo");
    const child = spawn(meterlineBin(), args, {
      env: {
        ...process.env,
        METERLINE_BOOTSTRAP_KEY: this.key,
        METERLINE_LOG_LEVEL: "warning",
        ...this.options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (chunk) => (this.output += chunk));
    child.stderr?.on("data", (chunk) => (this.output += chunk));
    this.process = child;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`meterline serve exited:\n${this.output}`);
      try {
        if ((await fetch(`${this.baseUrl}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`meterline serve did not start:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
    this.process = null;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.begin();
  }
}
