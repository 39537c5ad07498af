// Builds an app's code that imports @meterline/client (and /react) against this package's
// source, with vite, as tests/support/page.ts builds the browser test's page: the recipes'
// tests run their JavaScript this way, without publishing the package first.
//
//   node scripts/build-app.mjs page DIR OUT      a page (DIR/index.html) into the folder OUT
//   node scripts/build-app.mjs node FILE OUT     a Node program into OUT/FILE's name.mjs
import { writeFileSync } from "node:fs";
import { basename, extname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";

const src = fileURLToPath(new URL("../src/", import.meta.url));
const modules = fileURLToPath(new URL("../node_modules/", import.meta.url));
const alias = {
  "@meterline/client/react": resolve(src, "react/index.tsx"),
  "@meterline/client": resolve(src, "index.ts"),
  // the app's own folder has no node_modules: React comes from this package's
  "react-dom": resolve(modules, "react-dom"),
  react: resolve(modules, "react"),
};
const [kind, input, output] = process.argv.slice(2);
if (!["page", "node"].includes(kind) || !input || !output) {
  console.error("usage: build-app.mjs page DIR OUT | node FILE OUT");
  process.exit(2);
}
const outDir = resolve(output);
if (kind === "page") {
  await build({
    root: resolve(input),
    configFile: false,
    logLevel: "warn",
    build: { outDir, emptyOutDir: true },
    resolve: { alias },
  });
} else {
  const entry = resolve(input);
  await build({
    configFile: false,
    logLevel: "warn",
    resolve: { alias },
    build: {
      ssr: entry,
      outDir,
      emptyOutDir: true,
      target: "node20",
      rollupOptions: { output: { format: "es", entryFileNames: `${basename(entry, extname(entry))}.mjs` } },
    },
  });
  writeFileSync(resolve(outDir, "package.json"), '{"type": "module"}\n');
}
