// The React page of tests/browser/app built with vite, served with a small "app backend"
// that hands the browser a customer token (as a real app's server would).
import { createReadStream, existsSync, mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const here = fileURLToPath(new URL(".", import.meta.url));
const root = resolve(here, "../browser/app");
const src = resolve(here, "../../src");

export async function buildPage(): Promise<string> {
  const outDir = mkdtempSync(join(tmpdir(), "meterline-page-"));
  await build({
    root,
    logLevel: "silent",
    build: { outDir, emptyOutDir: true },
    resolve: {
      alias: {
        "@meterline/client/react": join(src, "react/index.tsx"),
        "@meterline/client": join(src, "index.ts"),
      },
    },
  });
  return outDir;
}

const TYPES: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };

export class AppServer {
  private server: Server | null = null;
  port = 0;

  constructor(
    private readonly dir: string,
    private readonly token: () => Promise<unknown>,
  ) {}

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(port: number): Promise<void> {
    this.server = createServer((request, response) => {
      const path = new URL(request.url ?? "/", "http://x").pathname;
      if (path === "/api/meterline-token") {
        this.token().then(
          (grant) => {
            response.writeHead(200, { "Content-Type": "application/json" });
            response.end(JSON.stringify(grant));
          },
          (error: Error) => {
            response.writeHead(500);
            response.end(error.message);
          },
        );
        return;
      }
      const file = join(this.dir, path === "/" ? "index.html" : path);
      if (!file.startsWith(this.dir) || !existsSync(file)) {
        response.writeHead(404);
        response.end();
        return;
      }
      response.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
      createReadStream(file).pipe(response);
    });
    await new Promise<void>((done) => this.server!.listen(port, "127.0.0.1", done));
    this.port = port;
  }

  close(): Promise<void> {
    return new Promise((done) => (this.server ? this.server.close(() => done()) : done()));
  }
}
