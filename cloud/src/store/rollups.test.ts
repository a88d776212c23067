import type { TelemetryPayload } from "@edgemeter/shared";
import { tempDir } from "@edgemeter/shared/testing";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "./pgliteSqlClient.js";
import { PgSqlClient } from "./pgSqlClient.js";
import { PostgresStore } from "./postgresStore.js";
import { createThrowawayDatabase, postgresAvailable } from "./throwawayDatabase.js";

const logger = pino({ level: "silent" });
const QUARTER_MS = 15 * 60 * 1000;
const HOUR_MS = 4 * QUARTER_MS;

/**
 * A scripted month of 15-minute readings for one meter whose true register is known, with
 * gaps (inside a day, across midnight, across the repeated/skipped DST hour), batches landed
 * out of order and late, replayed duplicates, and a meter replacement mid-day. Local day
 * boundaries are written out by hand (not computed by the code under test): Europe/Berlin is
 * UTC+1 in winter and UTC+2 in summer, switching at 01:00 UTC on the last Sunday of March
 * (2026-03-29, a 23-hour day) and of October (2026-10-25, a 25-hour day).
 */
interface Scenario {
  meterId: string;
  month: number; // 1-based
  days: number;
  dstDay: number;
  /** UTC offset in hours before and after the DST change. */
  offsetBefore: number;
  offsetAfter: number;
}

const OCTOBER: Scenario = { meterId: "roll-oct", month: 10, days: 31, dstDay: 25, offsetBefore: 2, offsetAfter: 1 };
const MARCH: Scenario = { meterId: "roll-mar", month: 3, days: 31, dstDay: 29, offsetBefore: 1, offsetAfter: 2 };

function dayStartMs(s: Scenario, day: number): number {
  const offset = day <= s.dstDay ? s.offsetBefore : s.offsetAfter;
  return Date.UTC(2026, s.month - 1, day) - offset * HOUR_MS;
}

/** kWh per hour on local day d; days 10 and 11 share a rate so a gap across their midnight interpolates exactly. */
function rateKwhPerHour(day: number): number {
  return day === 11 ? rateKwhPerHour(10) : 0.8 + (day % 5) * 0.35;
}

const REPLACEMENT_DAY = 15;

function script(s: Scenario) {
  const readings: { ts: string; kwh: number }[] = [];
  const expected = new Map<string, number>();
  let register = 12_345.6;
  for (let day = 1; day <= s.days; day++) {
    const start = dayStartMs(s, day);
    const end = dayStartMs(s, day + 1);
    let total = 0;
    for (let t = start; t < end; t += QUARTER_MS) {
      const local = (t - start) / HOUR_MS; // hours since local midnight
      const replaced = day === REPLACEMENT_DAY && local === 12;
      const inGap =
        (day === 5 && local > 8 && local < 14) ||
        (day === 10 && local > 22) ||
        (day === 11 && local < 3) ||
        (day === s.dstDay && local > 0.5 && local < 4);
      if (!inGap) readings.push({ ts: new Date(t).toISOString(), kwh: register });
      const step = rateKwhPerHour(day) / 4;
      if (replaced) {
        // The new meter's register starts at 3.2; the reading at 12:00 was the old meter's
        // last, the next one (12:15) the new meter's first: that quarter is unknown, not counted.
        register = 3.2;
      } else {
        register += step;
        total += step;
      }
    }
    expected.set(`2026-${String(s.month).padStart(2, "0")}-${String(day).padStart(2, "0")}`, total);
  }
  readings.push({ ts: new Date(dayStartMs(s, s.days + 1)).toISOString(), kwh: register });
  return { readings, expected };
}

function batches(meterId: string, readings: { ts: string; kwh: number }[]): TelemetryPayload[] {
  const out: TelemetryPayload[] = [];
  for (let i = 0; i < readings.length; i += 48) {
    out.push({
      v: 1,
      gatewayId: "gw-roll",
      batchId: `${meterId}-${i}`,
      sentAt: "2026-11-01T00:00:00.000Z",
      readings: readings.slice(i, i + 48).map((r, j) => ({
        meterId,
        seq: i + j,
        ts: r.ts,
        clock: "synced" as const,
        values: { importEnergyKwh: r.kwh, exportEnergyKwh: 0 },
      })),
    });
  }
  // Out of order and late: odd batches first, then even ones backwards, then a replay of a few.
  const odd = out.filter((_, i) => i % 2 === 1);
  const even = out.filter((_, i) => i % 2 === 0).reverse();
  return [...odd, ...even, out[3] as TelemetryPayload, out[20] as TelemetryPayload];
}

function runRollupSuite(name: string, open: () => Promise<{ store: PostgresStore; dispose(): Promise<void> } | null>) {
  describe(`consumption rollups: ${name}`, () => {
    let subject: { store: PostgresStore; dispose(): Promise<void> } | null = null;
    beforeAll(async () => {
      subject = await open();
      if (subject === null) return;
      await subject.store.migrate();
      await subject.store.sql.query("INSERT INTO gateways VALUES ('gw-roll', now(), now(), true, null, null)");
      for (const s of [OCTOBER, MARCH]) {
        await subject.store.sql.query(
          "INSERT INTO meters (meter_id, gateway_id, time_zone) VALUES ($1, 'gw-roll', $2)",
          [s.meterId, "Europe/Berlin"],
        );
      }
    }, 120_000);
    afterAll(async () => {
      await subject?.dispose();
    });

    for (const s of [OCTOBER, MARCH]) {
      it(`daily totals of ${s.meterId} equal the register differences (gaps, late batches, replacement, DST)`, async (context) => {
        if (subject === null) context.skip();
        const store = (subject as { store: PostgresStore }).store;
        const { readings, expected } = script(s);
        for (const batch of batches(s.meterId, readings)) await store.landTelemetry(batch, new Date());

        const { rows } = await store.sql.query<{ day: string; import_kwh: number; export_kwh: number }>(
          "SELECT to_char(day, 'YYYY-MM-DD') AS day, import_kwh, export_kwh FROM consumption_daily WHERE meter_id = $1 ORDER BY day",
          [s.meterId],
        );
        expect(rows.map((r) => r.day)).toEqual([...expected.keys()]);
        for (const row of rows) {
          expect(row.import_kwh, row.day).toBeCloseTo(expected.get(row.day) ?? Number.NaN, 6);
          expect(row.export_kwh).toBeCloseTo(0, 9);
        }
        const dst = `2026-${String(s.month).padStart(2, "0")}-${s.dstDay}`;
        expect(expected.get(dst)).toBeCloseTo(rateKwhPerHour(s.dstDay) * (s.month === 10 ? 25 : 23), 9);

        // Hourly buckets (UTC) hold the same energy, and each hour of the DST day its rate.
        const hourly = await store.sql.query<{ hour_start: Date; import_kwh: number }>(
          "SELECT hour_start, import_kwh FROM consumption_hourly WHERE meter_id = $1 ORDER BY hour_start",
          [s.meterId],
        );
        const monthTotal = [...expected.values()].reduce((a, b) => a + b, 0);
        expect(hourly.rows.reduce((a, r) => a + r.import_kwh, 0)).toBeCloseTo(monthTotal, 6);
        const dstHours = hourly.rows.filter(
          (r) =>
            r.hour_start.getTime() >= dayStartMs(s, s.dstDay) && r.hour_start.getTime() < dayStartMs(s, s.dstDay + 1),
        );
        expect(dstHours).toHaveLength(s.month === 10 ? 25 : 23);
        for (const hour of dstHours) expect(hour.import_kwh).toBeCloseTo(rateKwhPerHour(s.dstDay), 6);
      }, 120_000);
    }
  });
}

runRollupSuite("PGlite", async () => {
  const dir = tempDir("rollups");
  const store = new PostgresStore({ sql: await PgliteSqlClient.open(dir.dir), logger });
  return {
    store,
    async dispose() {
      await store.close();
      dir.remove();
    },
  };
});

runRollupSuite("PostgreSQL server", async () => {
  if (!(await postgresAvailable())) return null;
  const database = await createThrowawayDatabase();
  const store = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: database.url }), logger });
  return {
    store,
    async dispose() {
      await store.close();
      await database.drop();
    },
  };
});
