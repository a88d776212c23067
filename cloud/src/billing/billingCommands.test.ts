import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "@edgemeter/shared/testing";
import { afterAll, describe, expect, it } from "vitest";

/** The built CLI, as an operator runs it (npm test builds first). */
const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
const flat = (p: number) => Array.from({ length: 12 }, () => new Array<number>(24).fill(p));
/**
 * The test below starts the CLI this many times, one after the other; each start loads the
 * cloud package and opens PGlite (~1 s alone, several seconds on a loaded machine). Its time
 * limit is per subprocess, not the suite's 30 s default.
 */
const CLI_RUNS = 11;
const CLI_RUN_TIMEOUT_MS = 20_000;

describe("edgemeter-cloud billing / tariff commands", () => {
  const dir = tempDir("billing-cli");
  afterAll(() => dir.remove());
  let runs = 0;
  const run = (...args: string[]) => {
    runs++;
    const result = spawnSync(process.execPath, [CLI, ...args, "--config", path.join(dir.dir, "cloud.yaml")], {
      cwd: dir.dir,
      encoding: "utf8",
      env: { ...process.env, DATABASE_URL: "" },
      timeout: CLI_RUN_TIMEOUT_MS,
    });
    if (result.error !== undefined) throw result.error;
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  it(
    "imports and assigns a tariff, runs (dry and real) with progress, finalises, cancels with audit",
    () => {
      if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -b cloud\` first`);
      writeFileSync(
        path.join(dir.dir, "cloud.yaml"),
        "dataDir: ./data\nlog: { level: warn }\nbilling: { timeZone: Europe/Berlin, schedule: { enabled: false } }\n",
      );
      const tariffFile = path.join(dir.dir, "flat.json");
      writeFileSync(
        tariffFile,
        JSON.stringify({
          label: "flat",
          currency: "EUR",
          energyratestructure: [[{ rate: 0.3 }]],
          energyweekdayschedule: flat(0),
          energyweekendschedule: flat(0),
          fixedchargefirstmeter: 4,
        }),
      );
      expect(run("tariff", "import", "--id", "flat", "--tariff", tariffFile)).toMatchObject({ code: 0 });
      expect(run("tariff", "assign", "--meter", "m-cli", "--id", "flat", "--from", "2026-01-01").code).toBe(2);
      expect(
        run("tariff", "assign", "--meter", "m-cli", "--id", "flat", "--from", "2026-01-01T00:00:00+01:00").code,
      ).toBe(0);

      const dry = run("billing", "run", "--period", "2026-10", "--dry-run");
      expect(dry.code).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({
        dryRun: true,
        runId: null,
        meters: 1,
        billsCreated: 0,
        estimated: 1,
      });
      expect(dry.stderr).toContain("billing: 1/1 meters");

      const real = run("billing", "run", "--period", "2026-10");
      // No reads at all: an estimated bill (fixed charge only), flagged.
      expect(JSON.parse(real.stdout)).toMatchObject({ runId: 1, billsCreated: 1, estimated: 1, totalMinor: 400 });
      expect(JSON.parse(run("billing", "run", "--period", "2026-10").stdout)).toMatchObject({ billsUnchanged: 1 });
      expect(run("billing", "finalise", "--period", "2026-10", "--actor", "ops").stdout).toBe("finalised 1 bill(s)\n");
      expect(run("billing", "cancel", "--bill", "1").code).toBe(2);
      expect(run("billing", "cancel", "--bill", "1", "--reason", "test", "--actor", "ops")).toMatchObject({ code: 0 });
      expect(JSON.parse(run("billing", "run", "--period", "2026-10").stdout)).toMatchObject({ billsCreated: 1 });
      expect(run("billing", "run", "--period", "2026-1").code).toBe(2);
      // Keeps the time limit honest when a step is added.
      expect(runs).toBe(CLI_RUNS);
    },
    CLI_RUNS * CLI_RUN_TIMEOUT_MS,
  );
});
