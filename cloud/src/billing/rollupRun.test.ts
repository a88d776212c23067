import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { TelemetryPayload } from "@edgemeter/shared";
import { requireService } from "@edgemeter/shared/testing";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import type { StoredBillContent } from "./billingRun.js";
import { billMeter } from "./meterBill.js";
import { billingPeriod, calendarFor } from "./periods.js";
import { billRollupChunk } from "./rollupRun.js";
import { parseUrdbTariff } from "./tariff.js";
import type { RegisterRead } from "./vee.js";

const logger = pino({ level: "silent" });
const weekday = Array.from({ length: 24 }, (_, h) => (h >= 17 && h < 21 ? 3 : h >= 11 && h < 15 ? 2 : h >= 7 ? 1 : 0));
const TARIFF = parseUrdbTariff(
  {
    currency: "EUR",
    energyratestructure: [[{ rate: 0.18 }], [{ rate: 0.26 }], [{ rate: 0.31 }], [{ rate: 0.42 }]],
    energyweekdayschedule: Array.from({ length: 12 }, () => weekday),
    energyweekendschedule: Array.from({ length: 12 }, () => new Array<number>(24).fill(0)),
    demandratestructure: [[{ rate: 0 }], [{ rate: 4.5, max: 1 }, { rate: 7.25 }]],
    demandweekdayschedule: Array.from({ length: 12 }, () => weekday.map((p) => (p === 3 ? 1 : 0))),
    demandweekendschedule: Array.from({ length: 12 }, () => new Array<number>(24).fill(0)),
    fixedchargefirstmeter: 9.9,
  },
  "test",
);

describe("bulk billing from rollups agrees with the detailed path", () => {
  let store: PostgresStore;
  const reads: RegisterRead[] = [];
  const period = billingPeriod("2026-10", "Europe/Berlin");

  beforeAll(async () => {
    store = new PostgresStore({ sql: await PgliteSqlClient.open(undefined), logger, defaultTimeZone: "Europe/Berlin" });
    await store.migrate();
    // 15-minute register reads, landed through the store so its ingest keeps the hourly rollups.
    let register = 500;
    const readings: TelemetryPayload["readings"] = [];
    for (let ms = period.startMs - 86_400_000; ms <= period.endMs + 86_400_000; ms += 900_000) {
      const hour = new Date(ms).getUTCHours();
      register += 0.05 + (hour >= 16 && hour < 20 ? 0.4 : 0.1) * ((ms / 900_000) % 3);
      readings.push({
        meterId: "m-r",
        seq: readings.length + 1,
        ts: new Date(ms).toISOString(),
        clock: "synced",
        values: { importEnergyKwh: register },
      });
      reads.push({ tsMs: ms, importKwh: register, clock: "synced" });
    }
    for (let i = 0; i < readings.length; i += 1000) {
      await store.landTelemetry(
        {
          v: 1,
          gatewayId: "gw-1",
          batchId: `b${i}`,
          sentAt: "2026-11-02T00:00:00Z",
          readings: readings.slice(i, i + 1000),
        },
        new Date(),
      );
    }
  }, 60_000);
  afterAll(async () => {
    await store?.close();
  });

  it("same kWh per TOU period, same demand peak, same bill to the cent", async () => {
    await store.sql.transaction((tx) =>
      billRollupChunk(tx, {
        meterIds: ["m-r"],
        tariff: TARIFF,
        period,
        runId: null,
        now: new Date("2026-11-01T08:00:00Z"),
      }),
    );
    const { rows } = await store.sql.query<{ content: StoredBillContent }>(
      "SELECT content FROM bills WHERE meter_id = 'm-r'",
    );
    const bulk = rows[0]?.content;
    const detailed = billMeter({
      meterId: "m-r",
      period,
      calendar: calendarFor("Europe/Berlin"),
      segments: [{ tariffId: "t", tariff: TARIFF, fromMs: 0, toMs: Number.MAX_SAFE_INTEGER }],
      reads,
    });
    expect(bulk?.flags).toEqual([]);
    expect(bulk?.importKwh).toBeCloseTo(detailed.importKwh, 6);
    expect(bulk?.importKwhByPeriod).toHaveLength(4);
    bulk?.importKwhByPeriod.forEach((kwh, index) => {
      expect(kwh).toBeCloseTo(detailed.importKwhByPeriod[index] ?? Number.NaN, 6);
    });
    expect(bulk?.demandMinor).toBe(detailed.demandMinor);
    expect(bulk?.totalMinor).toBe(detailed.totalMinor);
    expect(detailed.demandMinor).toBeGreaterThan(0);
    // Idempotent: the same chunk again leaves the row as it was.
    const before = await store.sql.query("SELECT id, updated_at, content_sha256 FROM bills");
    await store.sql.transaction((tx) =>
      billRollupChunk(tx, {
        meterIds: ["m-r"],
        tariff: TARIFF,
        period,
        runId: null,
        now: new Date("2026-11-02T08:00:00Z"),
      }),
    );
    expect((await store.sql.query("SELECT id, updated_at, content_sha256 FROM bills")).rows).toEqual(before.rows);
  });
});

describe("edgemeter-cloud tariff bill (the built CLI)", () => {
  const cli = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
  const data = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
  const tariff = `${data}nrel-sam-residential-tou-tariff.urdb.json`;
  const available = requireService("shared data", existsSync(tariff), `expected ${data}`);

  it.skipIf(!available)("prints one JSON object with SAM's monthly charges; bad input exits 2 naming the file", () => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npx tsc -b cloud\` first`);
    const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8" });
    const ok = run([
      "tariff",
      "bill",
      "--tariff",
      tariff,
      "--hourly",
      `${data}nrel-sam-residential-load-8760.csv`,
      "--calendar",
      "sam",
    ]);
    expect(ok.status).toBe(0);
    const printed = JSON.parse(ok.stdout);
    const expected = JSON.parse(readFileSync(tariff, "utf8")).expected;
    expect(printed.months.map((month: { energy: number }) => month.energy)).toEqual(expected.monthlyEnergyCharge);
    expect(Object.keys(printed.months[0])).toEqual(
      expect.arrayContaining(["energy", "demand", "fixed", "minimum", "taxes", "total"]),
    );
    expect(printed.total).toBe(771.76);
    const bad = run(["tariff", "bill", "--tariff", tariff, "--hourly", tariff]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`${tariff}: line 2:`);
    expect(run(["tariff", "bill", "--tariff", tariff, "--hourly", tariff, "--zone", "Europe/Berlin"]).status).toBe(2);
  });
});
