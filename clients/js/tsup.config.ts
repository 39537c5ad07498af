import { defineConfig } from "tsup";

export default defineConfig({
  entry: { index: "src/index.ts", react: "src/react/index.tsx" },
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: false,
  target: "es2022",
  external: ["react"],
  treeshake: true,
  splitting: true, // one copy of the client shared by both entries (CommonJS too)
});
