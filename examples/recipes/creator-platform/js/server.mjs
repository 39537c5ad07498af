// The platform's web server (Node): serves the creator's page (built with vite into
// page/dist) and answers /api/meterline-token with a customer token for the signed-in
// creator, made with the API key — which never reaches the browser.
import { createReadStream, existsSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Meterline } from "@meterline/client";

const meterline = new Meterline({
  apiKey: process.env.METERLINE_API_KEY,
  baseUrl: process.env.METERLINE_URL ?? "http://127.0.0.1:8000",
});
const dist = resolve(process.env.PAGE_DIR ?? fileURLToPath(new URL("./page/dist/", import.meta.url)));
const port = Number(process.env.PORT ?? 5173);
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };

const server = createServer(async (request, response) => {
  const path = new URL(request.url ?? "/", "http://x").pathname;
  if (path === "/api/meterline-token") {
    const creator = process.env.CREATOR ?? "studio_web"; // your session knows who is signed in
    try {
      const grant = await meterline.createToken(creator, 600);
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end(JSON.stringify({ token: grant.token, expires_at: grant.expires_at }));
    } catch (error) {
      response.writeHead(502);
      response.end(String(error));
    }
    return;
  }
  const file = join(dist, path === "/" ? "index.html" : path);
  if (!file.startsWith(dist) || !existsSync(file)) {
    response.writeHead(404);
    response.end();
    return;
  }
  response.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
  createReadStream(file).pipe(response);
});
server.listen(port, "127.0.0.1", () => console.log(`the creator page: http://127.0.0.1:${port}/`));
