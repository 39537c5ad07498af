import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Test files import the package by its name, as an app does (the README shows them).
    alias: [
      { find: /^@meterline\/client\/react$/, replacement: src("react/index.tsx") },
      { find: /^@meterline\/client$/, replacement: src("index.ts") },
    ],
  },
  test: {
    include: ["tests/**/*.test.{ts,tsx}"],
    globalSetup: ["tests/support/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
  },
});
