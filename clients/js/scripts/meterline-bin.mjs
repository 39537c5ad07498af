// Where the `meterline` command is: METERLINE_BIN, else the repository's .venv, else PATH.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

export function meterlineBin() {
  if (process.env.METERLINE_BIN) return process.env.METERLINE_BIN;
  const here = dirname(fileURLToPath(import.meta.url));
  const local = resolve(here, "../../../.venv/bin/meterline");
  return existsSync(local) ? local : "meterline";
}
