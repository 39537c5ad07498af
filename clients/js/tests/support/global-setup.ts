// One real server shared by the tests that need no server of their own.
import type { TestProject } from "vitest/node";
import { MeterlineServer } from "./server.js";

let server: MeterlineServer | null = null;

export async function setup(project: TestProject): Promise<void> {
  server = await MeterlineServer.start({
    env: { METERLINE_CORS_ORIGINS: "http://app.example.test" },
  });
  project.provide("meterline", { baseUrl: server.baseUrl, key: server.key });
}

export async function teardown(): Promise<void> {
  await server?.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    meterline: { baseUrl: string; key: string };
  }
}
