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
const DAY0 = Date.UTC(2026, 9, 5);

/**
 * One day of 15-minute reads with a gap from 06:00 to 09:00 UTC (reads 06:15…08:45 missing:
 * one 3-hour interval, longer than ROLLUP_GAP_MS = 45 min) and an unsynced read at 14:30.
 * Expected quality per UTC hour written out by hand.
 */
function reads(): { ts: number; kwh: number; clock: "synced" | "unsynced" }[] {
  const out: { ts: number; kwh: number; clock: "synced" | "unsynced" }[] = [];
  for (let t = DAY0; t <= DAY0 + 24 * HOUR_MS; t += QUARTER_MS) {
    const hour = (t - DAY0) / HOUR_MS;
    const inGap = hour > 6 && hour < 9;
    if (inGap) continue;
    out.push({ ts: t, kwh: 100 + hour * 0.5, clock: hour === 14.5 ? "unsynced" : "synced" });
  }
  return out;
}

function payload(meterId: string, batchId: string, list: ReturnType<typeof reads>): TelemetryPayload {
  return {
    v: 1,
    gatewayId: "gw-q",
    batchId,
    sentAt: "2026-10-06T00:00:00.000Z",
    readings: list.map((r) => ({
      meterId,
      seq: Math.round((r.ts - DAY0) / QUARTER_MS),
      ts: new Date(r.ts).toISOString(),
      clock: r.clock,
      values: { importEnergyKwh: r.kwh, exportEnergyKwh: 0 },
    })),
  };
}

interface QualityRow {
  hour_start: Date;
  readings: number;
  unsynced_readings: number;
  gap_intervals: number;
  import_kwh: number;
}

async function quality(store: PostgresStore, meterId: string): Promise<QualityRow[]> {
  const { rows } = await store.sql.query<QualityRow>(
    `SELECT hour_start, readings, unsynced_readings, gap_intervals, import_kwh FROM consumption_hourly
      WHERE meter_id = $1 ORDER BY hour_start`,
    [meterId],
  );
  return rows.map((row) => ({ ...row, hour_start: new Date(row.hour_start) }));
}

function suite(name: string, open: () => Promise<{ store: PostgresStore; dispose(): Promise<void> } | null>) {
  describe(`rollup data quality: ${name}`, () => {
    let subject: { store: PostgresStore; dispose(): Promise<void> } | null = null;
    beforeAll(async () => {
      subject = await open();
      if (subject === null) return;
      await subject.store.migrate();
      await subject.store.sql.query("INSERT INTO gateways VALUES ('gw-q', now(), now(), true, null, null)");
    }, 120_000);
    afterAll(async () => {
      await subject?.dispose();
    });

    it("counts reads, unsynced reads and gap hours, also for out-of-order batches, and a late fill clears the gap", async (context) => {
      if (subject === null) context.skip();
      const store = (subject as { store: PostgresStore }).store;
      const all = reads();
      // Out of order: the second half first, then the first half in two batches backwards.
      const half = Math.floor(all.length / 2);
      await store.landTelemetry(payload("q-1", "b3", all.slice(half)), new Date());
      await store.landTelemetry(payload("q-1", "b2", all.slice(10, half)), new Date());
      await store.landTelemetry(payload("q-1", "b1", all.slice(0, 10)), new Date());

      const rows = await quality(store, "q-1");
      expect(rows).toHaveLength(25); // 00:00 … 24:00 (the last read opens the next day's first hour)
      const byHour = new Map(rows.map((row) => [(row.hour_start.getTime() - DAY0) / HOUR_MS, row]));
      for (let hour = 0; hour < 24; hour++) {
        const row = byHour.get(hour);
        // 4 reads per hour except: 06 has only 06:00, 07 and 08 none.
        const expectedReads = hour === 6 ? 1 : hour === 7 || hour === 8 ? 0 : 4;
        expect(row?.readings, `hour ${hour}`).toBe(expectedReads);
        expect(row?.gap_intervals, `hour ${hour}`).toBe(hour >= 6 && hour < 9 ? 1 : 0);
        expect(row?.unsynced_readings, `hour ${hour}`).toBe(hour === 14 ? 1 : 0);
        expect(row?.import_kwh, `hour ${hour}`).toBeCloseTo(0.5, 9);
      }
      expect(byHour.get(24)?.readings).toBe(1);

      // The gap's reads arrive late: the 3-hour interval is split into 15-minute ones.
      const late: ReturnType<typeof reads> = [];
      for (let t = DAY0 + 6 * HOUR_MS + QUARTER_MS; t < DAY0 + 9 * HOUR_MS; t += QUARTER_MS) {
        late.push({ ts: t, kwh: 100 + ((t - DAY0) / HOUR_MS) * 0.5, clock: "synced" });
      }
      // Landed in two batches, later half first, so the first one only shortens the gap.
      await store.landTelemetry(payload("q-1", "late-2", late.slice(6)), new Date());
      const partly = new Map(
        (await quality(store, "q-1")).map((row) => [(row.hour_start.getTime() - DAY0) / HOUR_MS, row]),
      );
      // Reads 07:45…08:45 arrived: 06:00 → 07:45 is still a gap (overlapping hours 6 and 7).
      expect([6, 7, 8].map((h) => partly.get(h)?.gap_intervals)).toEqual([1, 1, 0]);
      await store.landTelemetry(payload("q-1", "late-1", late.slice(0, 6)), new Date());
      const filled = await quality(store, "q-1");
      for (const row of filled.slice(0, 24)) {
        expect(row.gap_intervals).toBe(0);
        expect(row.readings).toBe(4);
        expect(row.import_kwh).toBeCloseTo(0.5, 9);
      }
    }, 120_000);
  });
}

suite("PGlite", async () => {
  const dir = tempDir("rollup-quality");
  const store = new PostgresStore({ sql: await PgliteSqlClient.open(dir.dir), logger });
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
  const store = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: database.url }), logger });
  return {
    store,
    async dispose() {
      await store.close();
      await database.drop();
    },
  };
});
