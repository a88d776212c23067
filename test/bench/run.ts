/**
 * `npm run bench [-- <name>]`: runs the benchmarks in this folder (files `<name>.bench.ts`,
 * built to test/dist/bench/). Each benchmark measures against a baseline in the same run and
 * prints, as its last line, one JSON object `{"bench": name, ...figures, "ratio": x}`.
 * Benchmarks are figures, never pass/fail tests.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith(".bench.js"))
  .map((f) => f.slice(0, -".bench.js".length))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !available.includes(name));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; available: ${available.join(", ") || "(none yet)"}`);
  process.exit(2);
}
const selected = wanted.length > 0 ? wanted : available;
if (selected.length === 0) console.log("no benchmarks yet");
let failed = 0;
for (const name of selected) {
  console.log(`# bench ${name}`);
  const result = spawnSync(process.execPath, ["--expose-gc", path.join(here, `${name}.bench.js`)], {
    stdio: "inherit",
  });
  if (result.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
