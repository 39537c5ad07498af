// Builds an app's code that imports @meterline/client (and /react) against this package's
// source, with vite, as tests/support/page.ts builds the browser test's page: the recipes'
// tests run their JavaScript this way, without publishing the package first.
//
//   node scripts/build-app.mjs page DIR OUT      a page (DIR/index.html) into the folder OUT
//   node scripts/build-app.mjs node FILE OUT     a Node program into OUT/FILE's name.mjs
//   node scripts/build-app.mjs types DIR         type-checks DIR's .ts/.tsx (strict, tsc)
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, extname, join, resolve } from "node:path";
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
if (!["page", "node", "types"].includes(kind) || !input || (!output && kind !== "types")) {
  console.error("usage: build-app.mjs page DIR OUT | node FILE OUT | types DIR");
  process.exit(2);
}
const outDir = resolve(output ?? ".");
if (kind === "types") {
  // this package's compiler settings, with the app's imports mapped as for the build
  const types = resolve(modules, "@types");
  const config = {
    extends: fileURLToPath(new URL("../tsconfig.json", import.meta.url)),
    compilerOptions: {
      noEmit: true,
      typeRoots: [types],
      paths: {
        "@meterline/client/react": [alias["@meterline/client/react"]],
        "@meterline/client": [alias["@meterline/client"]],
        react: [resolve(types, "react")],
        "react/*": [resolve(types, "react/*")],
        "react-dom/*": [resolve(types, "react-dom/*")],
      },
    },
    include: [resolve(input)],
  };
  const folder = mkdtempSync(join(tmpdir(), "meterline-types-"));
  writeFileSync(join(folder, "tsconfig.json"), JSON.stringify(config));
  try {
    execFileSync(resolve(modules, ".bin/tsc"), ["-p", folder], { stdio: "inherit" });
  } catch {
    process.exitCode = 1;
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
} else if (kind === "page") {
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
