import type { TelemetryPayload } from "@edgemeter/shared";
import { tempDir } from "@edgemeter/shared/testing";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PgSqlClient } from "../store/pgSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import { createThrowawayDatabase, postgresAvailable } from "../store/throwawayDatabase.js";
import { assignTariff, putTariff, runBilling, type StoredBillContent } from "./billingRun.js";
import { billMeter } from "./meterBill.js";
import { billingPeriod, calendarFor } from "./periods.js";
import { parseUrdbTariff } from "./tariff.js";
import type { RegisterRead } from "./vee.js";

/**
 * `billing run` bills from the hourly rollups when their quality counts say every hour was
 * measured, and from raw readings (full VEE) otherwise — so "estimated" appears exactly on the
 * bills that used an estimate.
 */
const logger = pino({ level: "silent" });
const QUARTER = 15 * 60_000;
const ZONE = "Europe/Berlin";
const period = billingPeriod("2026-10", ZONE);
const weekday = Array.from({ length: 24 }, (_, h) => (h >= 17 && h < 21 ? 3 : h >= 11 && h < 15 ? 2 : h >= 7 ? 1 : 0));
const URDB = {
  currency: "EUR",
  energyratestructure: [[{ rate: 0.18 }], [{ rate: 0.26 }], [{ rate: 0.31 }], [{ rate: 0.42 }]],
  energyweekdayschedule: Array.from({ length: 12 }, () => weekday),
  energyweekendschedule: Array.from({ length: 12 }, () => new Array<number>(24).fill(0)),
  demandratestructure: [[{ rate: 0 }], [{ rate: 4.5, max: 1 }, { rate: 7.25 }]],
  demandweekdayschedule: Array.from({ length: 12 }, () => weekday.map((p) => (p === 3 ? 1 : 0))),
  demandweekendschedule: Array.from({ length: 12 }, () => new Array<number>(24).fill(0)),
  fixedchargefirstmeter: 9.9,
  taxes: [{ name: "VAT", percent: 19 }],
};
const TARIFF = parseUrdbTariff(URDB, "test");

/** What each meter's reads look like around one instant inside October. */
const MID = Date.parse("2026-10-14T10:00:00Z");
const METERS: Record<string, (ms: number) => "skip" | "synced" | "unsynced"> = {
  "r-clean": () => "synced",
  // Two hours without reads: estimated.
  "r-gap": (ms) => (ms > MID && ms < MID + 2 * 3_600_000 ? "skip" : "synced"),
  // One missed 15-minute read (a 30-minute interval): still a gap for VEE, so still estimated.
  "r-missed": (ms) => (ms === MID ? "skip" : "synced"),
  "r-unsynced": (ms) => (ms === MID ? "unsynced" : "synced"),
};

function series(meterId: string): RegisterRead[] {
  const reads: RegisterRead[] = [];
  let register = 1000 + meterId.length;
  for (let ms = period.startMs - 86_400_000; ms <= period.endMs + 86_400_000; ms += QUARTER) {
    const hour = new Date(ms).getUTCHours();
    register += 0.05 + (hour >= 15 && hour < 19 ? 0.35 : 0.08) * ((ms / QUARTER) % 3);
    const kind = METERS[meterId]?.(ms) ?? "synced";
    if (kind === "skip") continue;
    reads.push({ tsMs: ms, importKwh: register, clock: kind });
  }
  return reads;
}

function suite(name: string, open: () => Promise<{ store: PostgresStore; dispose(): Promise<void> } | null>) {
  describe(`billing run routes by rollup quality: ${name}`, () => {
    let subject: { store: PostgresStore; dispose(): Promise<void> } | null = null;
    beforeAll(async () => {
      subject = await open();
      if (subject === null) return;
      const { store } = subject;
      await store.migrate();
      await putTariff(store.sql, "tou4", URDB, "test");
      let seq = 0;
      for (const meterId of Object.keys(METERS)) {
        const readings: TelemetryPayload["readings"] = series(meterId).map((read) => ({
          meterId,
          seq: ++seq,
          ts: new Date(read.tsMs).toISOString(),
          clock: read.clock,
          values: { importEnergyKwh: read.importKwh },
        }));
        // Newest batch first: the rollups must come out the same as in order.
        for (let i = Math.floor((readings.length - 1) / 1000) * 1000; i >= 0; i -= 1000) {
          await store.landTelemetry(
            {
              v: 1,
              gatewayId: "gw-r",
              batchId: `${meterId}-${i}`,
              sentAt: "2026-11-02T00:00:00Z",
              readings: readings.slice(i, i + 1000),
            },
            new Date(),
          );
        }
        await store.sql.query("UPDATE meters SET time_zone = $2 WHERE meter_id = $1", [meterId, ZONE]);
        await assignTariff(store.sql, meterId, "tou4", new Date("2026-01-01T00:00:00Z"));
      }
    }, 180_000);
    afterAll(async () => {
      await subject?.dispose();
    });

    it("clean meters from rollups (same bill as the detailed path), flagged ones from readings, estimated exactly when estimated", async (context) => {
      if (subject === null) return context.skip();
      const { store } = subject;
      const options = {
        period: "2026-10",
        dryRun: false,
        trigger: "cli" as const,
        defaultZone: "UTC",
        now: () => new Date("2026-11-01T08:00:00Z"),
        logger,
      };
      const first = await runBilling(store.sql, options);
      expect(first).toMatchObject({ meters: 4, billsCreated: 4 });
      const { rows } = await store.sql.query<{
        meter_id: string;
        estimated: boolean;
        content: StoredBillContent & { source?: string };
      }>("SELECT meter_id, estimated, content FROM bills WHERE period = '2026-10' ORDER BY meter_id");
      const byMeter = new Map(rows.map((row) => [row.meter_id, row]));
      const sources = Object.fromEntries(rows.map((row) => [row.meter_id, row.content.source ?? "readings"]));
      expect(sources).toEqual({
        "r-clean": "rollups",
        "r-gap": "readings",
        "r-missed": "readings",
        "r-unsynced": "readings",
      });
      for (const [meterId, row] of byMeter) {
        const detailed = billMeter({
          meterId,
          period,
          calendar: calendarFor(ZONE),
          segments: [{ tariffId: "tou4", tariff: TARIFF, fromMs: 0, toMs: Number.MAX_SAFE_INTEGER }],
          reads: series(meterId),
        });
        // Whatever the path, the bill is the detailed VEE's bill to the cent, estimated flag included.
        expect(row.estimated, meterId).toBe(detailed.estimated);
        expect(row.content.totalMinor, meterId).toBe(detailed.totalMinor);
        expect(row.content.importKwh, meterId).toBeCloseTo(detailed.importKwh, 6);
      }
      expect(byMeter.get("r-clean")?.estimated).toBe(false);
      expect(byMeter.get("r-clean")?.content.dailyKwh).toHaveLength(31);
      expect(byMeter.get("r-gap")?.estimated).toBe(true);
      expect(byMeter.get("r-missed")?.estimated).toBe(true);
      expect(byMeter.get("r-missed")?.content.flags.map((flag) => flag.code)).toContain("gap");
      expect(byMeter.get("r-unsynced")?.content.flags.map((flag) => flag.code)).toContain("unsynced");

      const again = await runBilling(store.sql, options);
      expect(again).toMatchObject({ meters: 4, billsCreated: 0, billsUpdated: 0, billsUnchanged: 4 });

      // One meter per statement: on a server the chunks are read by parallel connections on the
      // run's snapshot (PGlite reads them in turn). Same bills, byte for byte.
      const chunked = await runBilling(store.sql, { ...options, chunkSize: 1, readers: 2 });
      expect(chunked).toMatchObject({ meters: 4, billsCreated: 0, billsUpdated: 0, billsUnchanged: 4 });
    }, 120_000);

    it("a zone with a half-hour offset is billed from readings (UTC-hour rollups cannot split its hours)", async (context) => {
      if (subject === null) return context.skip();
      const { store } = subject;
      const meterId = "r-kolkata";
      const zone = "Asia/Kolkata";
      const readings: TelemetryPayload["readings"] = series(meterId).map((read, index) => ({
        meterId,
        seq: index + 1,
        ts: new Date(read.tsMs).toISOString(),
        clock: read.clock,
        values: { importEnergyKwh: read.importKwh },
      }));
      for (let i = 0; i < readings.length; i += 1000) {
        await store.landTelemetry(
          {
            v: 1,
            gatewayId: "gw-k",
            batchId: `k-${i}`,
            sentAt: "2026-11-02T00:00:00Z",
            readings: readings.slice(i, i + 1000),
          },
          new Date(),
        );
      }
      await store.sql.query("UPDATE meters SET time_zone = $2 WHERE meter_id = $1", [meterId, zone]);
      await assignTariff(store.sql, meterId, "tou4", new Date("2026-01-01T00:00:00Z"));
      await runBilling(store.sql, {
        period: "2026-10",
        dryRun: false,
        trigger: "cli",
        defaultZone: "UTC",
        now: () => new Date("2026-11-01T08:00:00Z"),
        logger,
      });
      const { rows } = await store.sql.query<{ content: StoredBillContent & { source?: string } }>(
        "SELECT content FROM bills WHERE period = '2026-10' AND meter_id = $1",
        [meterId],
      );
      const bill = rows[0]?.content;
      const detailed = billMeter({
        meterId,
        period: billingPeriod("2026-10", zone),
        calendar: calendarFor(zone),
        segments: [{ tariffId: "tou4", tariff: TARIFF, fromMs: 0, toMs: Number.MAX_SAFE_INTEGER }],
        reads: series(meterId),
      });
      expect(bill?.source).toBeUndefined();
      expect(bill?.zone).toBe(zone);
      expect(bill?.totalMinor).toBe(detailed.totalMinor);
      expect(bill?.importKwh).toBeCloseTo(detailed.importKwh, 6);
    }, 120_000);
  });
}

suite("PGlite", async () => {
  const dir = tempDir("rollup-routing");
  const store = new PostgresStore({ sql: await PgliteSqlClient.open(dir.dir), logger, defaultTimeZone: ZONE });
  return {
    store,
    async dispose() {
      await store.close();
      dir.remove();
    },
  };
});

suite("PostgreSQL server", async () => {
  if (!(await postgresAvailable())) return null;
  const database = await createThrowawayDatabase();
  const store = new PostgresStore({
    sql: await PgSqlClient.open({ databaseUrl: database.url }),
    logger,
    defaultTimeZone: ZONE,
  });
  return {
    store,
    async dispose() {
      await store.close();
      await database.drop();
    },
  };
});
