import { createHash } from "node:crypto";
import type { SqlExecutor } from "../store/sqlClient.js";
import { stableJson } from "./billingRun.js";
import { billPeriod, type PeriodAggregates } from "./engine.js";
import { type BillingPeriod, calendarFor } from "./periods.js";
import type { UrdbTariff } from "./tariff.js";
import { QUALITY, type QualityOfReading, type VeeFlag } from "./vee.js";

/**
 * The bulk billing path for fleets: bills thousands of meters per round trip from what the
 * store keeps after ingest — the hourly rollups (`consumption_hourly`, aggregated per TOU and
 * demand period by one SQL statement), the synced register reads either side of each boundary,
 * and the peaks — instead of each meter's raw readings.
 *
 * VEE on this path: the opening/closing register values are interpolated between the last read
 * before and the first after each boundary (unsynced reads excluded); a missing side is an
 * estimated boundary; the rollup total must agree with the register difference within 0.1 %
 * (+ 0.001 kWh) — when it does, the period kWh are scaled to the register difference so the
 * bill equals it exactly; when it does not, the bill is flagged `intervalMismatch` and billed on
 * the register difference the same way. Meters with a mid-period tariff change, exchange or
 * finalised bill take the detailed path (billingRun.ts).
 *
 * Data quality comes from the rollups themselves (migrations/0004_rollup_quality.sql): a meter
 * is billed here only when every hour of the period, plus the hour before it and the hour after
 * it (where the boundary reads lie), has the same number of reads (≥ 1), no unsynced read and no
 * interval longer than ROLLUP_GAP_MS. Anything else — a gap (an hour with fewer reads than the
 * others, or a long interval), an unsynced clock, a missing boundary read, rollups that disagree
 * with the register difference (rollover, negative consumption, a spike), a meter exchange, a
 * pending adjustment or a finalised bill — is returned in `fallback` for the detailed VEE on raw
 * readings (billingRun.ts). So a bill from this path never used an estimate, and the detailed
 * path still marks every bill that did.
 */
export interface RollupChunkInput {
  meterIds: readonly string[];
  tariff: UrdbTariff;
  /** Stamped on each line (as the detailed path does); optional for the benchmark. */
  tariffId?: string;
  period: BillingPeriod;
  runId: number | null;
  now: Date;
  /** Compute the bills, write nothing. */
  dryRun?: boolean;
  /** Also sum kWh per local day for the invoice chart (one more GROUP BY key). */
  withDaily?: boolean;
}

export interface RollupChunkResult {
  written: number;
  created: number;
  updated: number;
  unchanged: number;
  estimated: number;
  totalMinor: number;
  /** Meters this path did not bill, with why: the detailed path (raw readings, full VEE) bills them. */
  fallback: { meterId: string; reason: string }[];
}

/** Why a meter's rollups are not enough for a bill, or null when they are (see the header). */
export function rollupQualityProblem(
  row: { hours: number; min_readings: number; max_readings: number; gaps: number; unsynced: number } | undefined,
  expectedHours: number,
): string | null {
  if (row === undefined) return "no rollups in the period";
  if (Number(row.hours) < expectedHours) return `rollups for ${row.hours} of ${expectedHours} hours`;
  if (Number(row.min_readings) < 1) return "an hour without reads (or rollups without quality counts)";
  if (Number(row.min_readings) !== Number(row.max_readings))
    return `reads per hour vary (${row.min_readings}…${row.max_readings}): a gap`;
  if (Number(row.gaps) > 0) return "interpolated across a gap";
  if (Number(row.unsynced) > 0) return "unsynced reads";
  return null;
}

const HOUR_MS = 3_600_000;

interface HourMap {
  hourStarts: string[];
  energyPeriods: number[];
  demandPeriods: number[];
  /** Index of the local day (0 = the 1st). */
  days: number[];
}

const hourMaps = new Map<string, HourMap>();

/** Each UTC hour of the period with its TOU energy and demand period (cached per tariff object and period). */
function hourMapFor(tariff: UrdbTariff, period: BillingPeriod): HourMap {
  const key = `${period.period}|${period.zone}|${stableJson(tariff.energyweekdayschedule)}|${stableJson(tariff.demandweekdayschedule)}|${stableJson(tariff.energyweekendschedule)}|${stableJson(tariff.demandweekendschedule)}`;
  const cached = hourMaps.get(key);
  if (cached !== undefined) return cached;
  const calendar = calendarFor(period.zone);
  const map: HourMap = { hourStarts: [], energyPeriods: [], demandPeriods: [], days: [] };
  for (let ms = period.startMs; ms < period.endMs; ms += HOUR_MS) {
    const local = calendar.localTime(ms);
    const weekend = local.weekday === 0 || local.weekday === 6;
    const pick = (weekday: number[][] | undefined, weekendRows: number[][] | undefined) =>
      (weekend ? weekendRows : weekday)?.[local.month - 1]?.[local.hour] ?? 0;
    map.hourStarts.push(new Date(ms).toISOString());
    map.energyPeriods.push(pick(tariff.energyweekdayschedule, tariff.energyweekendschedule));
    map.demandPeriods.push(pick(tariff.demandweekdayschedule, tariff.demandweekendschedule));
    map.days.push(local.day - 1);
  }
  hourMaps.set(key, map);
  return map;
}

interface BoundaryRow {
  meter_id: string;
  at: Date | string;
  ts1: Date | string | null;
  v1: number | null;
  ts2: Date | string | null;
  v2: number | null;
}

export async function billRollupChunk(tx: SqlExecutor, input: RollupChunkInput): Promise<RollupChunkResult> {
  const { tariff, period } = input;
  const hours = hourMapFor(tariff, period);
  const energyPeriods = tariff.energyratestructure?.length ?? 1;
  const demandPeriods = tariff.demandratestructure?.length ?? 0;
  const startIso = new Date(period.startMs).toISOString();
  const endIso = new Date(period.endMs).toISOString();
  const result: RollupChunkResult = {
    written: 0,
    created: 0,
    updated: 0,
    unchanged: 0,
    estimated: 0,
    totalMinor: 0,
    fallback: [],
  };
  const fallback = new Map<string, string>();

  // ONE scan of the chunk's rollups: the period plus the hour either side (where the boundary
  // reads lie; those hours have no TOU period) grouped by TOU energy period, demand period and
  // local day, then folded into one row per meter: quality counts and the groups as arrays.
  const { rows: scanRows } = await tx.query<{
    meter_id: string;
    hours: number;
    min_readings: number;
    max_readings: number;
    gaps: number;
    unsynced: number;
    ep: (number | null)[];
    dp: (number | null)[];
    d: (number | null)[];
    kwh: number[];
    exp: number[];
    peak: number[];
  }>(
    `WITH hours AS (SELECT * FROM unnest($2::timestamptz[], $3::int[], $4::int[], $5::int[]) AS h(hour_start, ep, dp, d)),
     per AS (
       SELECT c.meter_id, h.ep, h.dp, h.d, sum(c.import_kwh) AS kwh, sum(c.export_kwh) AS exp, max(c.import_kwh) AS peak,
              count(*) AS hours, min(c.readings) AS min_r, max(c.readings) AS max_r,
              sum(c.gap_intervals) AS gaps, sum(c.unsynced_readings) AS unsynced
         FROM consumption_hourly c LEFT JOIN hours h ON h.hour_start = c.hour_start
        WHERE c.meter_id = ANY($1::text[])
          AND c.hour_start >= $6::timestamptz - interval '1 hour' AND c.hour_start < $7::timestamptz + interval '1 hour'
        GROUP BY c.meter_id, h.ep, h.dp, h.d)
     SELECT meter_id, sum(hours)::int AS hours, min(min_r) AS min_readings, max(max_r) AS max_readings,
            sum(gaps)::int AS gaps, sum(unsynced)::int AS unsynced,
            array_agg(ep) AS ep, array_agg(dp) AS dp, array_agg(d) AS d,
            array_agg(kwh) AS kwh, array_agg(exp) AS exp, array_agg(peak) AS peak
       FROM per GROUP BY meter_id`,
    [input.meterIds, hours.hourStarts, hours.energyPeriods, hours.demandPeriods, hours.days, startIso, endIso],
  );
  const scans = new Map(scanRows.map((row) => [row.meter_id, row]));
  const expectedHours = period.hours + 2;
  for (const meterId of input.meterIds) {
    const problem = rollupQualityProblem(scans.get(meterId), expectedHours);
    if (problem !== null) fallback.set(meterId, problem);
  }
  // What the detailed path handles: exchanges, adjustments waiting for this bill, finalised bills.
  const { rows: special } = await tx.query<{ meter_id: string; reason: string }>(
    `SELECT meter_id, 'meter exchange' AS reason FROM meter_exchanges
      WHERE meter_id = ANY($1::text[]) AND exchanged_at >= $2::timestamptz - interval '48 hours' AND exchanged_at <= $3::timestamptz + interval '48 hours'
     UNION ALL
     SELECT a.meter_id, 'pending adjustment' FROM bill_adjustments a JOIN bills b ON b.id = a.original_bill_id
      WHERE a.meter_id = ANY($1::text[]) AND b.period < $4 AND (a.applied_in_period IS NULL OR a.applied_in_period = $4)
     UNION ALL
     SELECT meter_id, 'finalised bill' FROM bills WHERE meter_id = ANY($1::text[]) AND period = $4 AND status = 'finalised'`,
    [input.meterIds, startIso, endIso, period.period],
  );
  for (const row of special) if (!fallback.has(row.meter_id)) fallback.set(row.meter_id, row.reason);
  const meterIds = input.meterIds.filter((id) => !fallback.has(id));

  const daily = input.withDaily === true;
  const { rows: boundaryRows } = await tx.query<BoundaryRow>(
    `SELECT m.meter_id, b.at, r1.ts AS ts1, r1.import_energy_kwh AS v1, r2.ts AS ts2, r2.import_energy_kwh AS v2
       FROM unnest($1::text[]) AS m(meter_id) CROSS JOIN unnest($2::timestamptz[]) AS b(at)
       LEFT JOIN LATERAL (SELECT ts, import_energy_kwh FROM readings
                           WHERE meter_id = m.meter_id AND ts <= b.at AND clock = 'synced' AND import_energy_kwh IS NOT NULL
                           ORDER BY ts DESC LIMIT 1) r1 ON true
       LEFT JOIN LATERAL (SELECT ts, import_energy_kwh FROM readings
                           WHERE meter_id = m.meter_id AND ts >= b.at AND clock = 'synced' AND import_energy_kwh IS NOT NULL
                           ORDER BY ts LIMIT 1) r2 ON true`,
    [meterIds, [startIso, endIso]],
  );

  type Aggregate = PeriodAggregates & {
    importKwhByPeriod: number[];
    exportKwhByPeriod: number[];
    peakKwByDemandPeriod: number[];
    dailyKwh: number[];
  };
  const emptyAggregate = (): Aggregate => ({
    importKwhByPeriod: new Array<number>(energyPeriods).fill(0),
    exportKwhByPeriod: new Array<number>(energyPeriods).fill(0),
    peakKwByDemandPeriod: new Array<number>(demandPeriods).fill(0),
    dailyKwh: daily ? new Array<number>(period.days).fill(0) : [],
    peakKw: 0,
    estimated: false,
  });
  const aggregates = new Map<string, Aggregate>();
  for (const meterId of meterIds) {
    const row = scans.get(meterId);
    if (row === undefined) continue;
    const entry = emptyAggregate();
    aggregates.set(meterId, entry);
    row.ep.forEach((period, index) => {
      // The hours either side of the period carry no TOU period: quality only.
      if (period === null) return;
      const ep = Number(period);
      const dp = Number(row.dp[index] ?? 0);
      const kwh = Number(row.kwh[index]);
      entry.importKwhByPeriod[ep] = (entry.importKwhByPeriod[ep] ?? 0) + kwh;
      entry.exportKwhByPeriod[ep] = (entry.exportKwhByPeriod[ep] ?? 0) + Number(row.exp[index]);
      if (daily) {
        const day = Number(row.d[index]);
        entry.dailyKwh[day] = (entry.dailyKwh[day] ?? 0) + kwh;
      }
      const peak = Number(row.peak[index]);
      if (demandPeriods > 0 && peak > (entry.peakKwByDemandPeriod[dp] ?? 0)) entry.peakKwByDemandPeriod[dp] = peak;
      if (peak > entry.peakKw) entry.peakKw = peak;
    });
  }
  const boundaries = new Map<string, { opening?: BoundaryRow; closing?: BoundaryRow }>();
  for (const row of boundaryRows) {
    const entry = boundaries.get(row.meter_id) ?? {};
    if (new Date(row.at).getTime() === period.startMs) entry.opening = row;
    else entry.closing = row;
    boundaries.set(row.meter_id, entry);
  }

  const bills: { meterId: string; json: string; sha: string; importKwh: number; totalMinor: number }[] = [];
  for (const meterId of meterIds) {
    const flags: VeeFlag[] = [];
    const boundary = (row: BoundaryRow | undefined, atMs: number) => {
      const t1 = row?.ts1 == null ? null : new Date(row.ts1).getTime();
      const t2 = row?.ts2 == null ? null : new Date(row.ts2).getTime();
      if (t1 === null || t2 === null || row?.v1 == null || row.v2 == null) return null;
      const value =
        t2 === t1 ? Number(row.v1) : Number(row.v1) + ((atMs - t1) / (t2 - t1)) * (Number(row.v2) - Number(row.v1));
      return { atMs, registerKwh: value, quality: QUALITY.valid as QualityOfReading };
    };
    const opening = boundary(boundaries.get(meterId)?.opening, period.startMs);
    const closing = boundary(boundaries.get(meterId)?.closing, period.endMs);
    if (opening === null || closing === null) {
      // An estimated boundary: the detailed VEE estimates it and marks the bill.
      fallback.set(meterId, "no synced read on one side of a boundary");
      continue;
    }
    const aggregate = aggregates.get(meterId) ?? emptyAggregate();
    const rollupKwh = aggregate.importKwhByPeriod.reduce((sum, kwh) => sum + kwh, 0);
    const registerKwh = closing.registerKwh - opening.registerKwh;
    if (Math.abs(rollupKwh - registerKwh) > 0.001 * Math.abs(registerKwh) + 0.001) {
      // Rollover, a register decrease or a spike: rollups count a backwards step as zero.
      fallback.set(
        meterId,
        `intervalMismatch: rollups sum to ${rollupKwh.toFixed(3)} kWh, registers differ by ${registerKwh.toFixed(3)} kWh`,
      );
      continue;
    }
    // The register difference is what is billed; the rollups only split it over TOU periods.
    const scale = rollupKwh > 0 ? registerKwh / rollupKwh : 0;
    aggregate.importKwhByPeriod = aggregate.importKwhByPeriod.map((kwh) => kwh * scale);
    const dailyKwh = aggregate.dailyKwh.map((kwh) => kwh * scale);
    const importKwh = aggregate.importKwhByPeriod.reduce((sum, kwh) => sum + kwh, 0);
    if (importKwh === 0) flags.push({ code: "zero", atMs: period.startMs, detail: "no consumption in the period" });
    const bill = billPeriod({
      tariff,
      month: period.month,
      daysInMonth: period.days,
      intervals: [],
      aggregates: aggregate,
    });
    const tariffId = input.tariffId;
    const content = {
      meterId,
      period: period.period,
      zone: period.zone,
      currency: tariff.currency,
      opening,
      closing,
      importKwh,
      exportKwh: bill.exportKwh,
      importKwhByPeriod: bill.importKwhByPeriod,
      peakKwByDemandPeriod: bill.peakKwByDemandPeriod,
      dailyKwh,
      lines: tariffId === undefined ? bill.lines : bill.lines.map((line) => ({ ...line, tariffId })),
      energyMinor: bill.energyMinor,
      demandMinor: bill.demandMinor,
      fixedMinor: bill.fixedMinor,
      minimumMinor: bill.minimumMinor,
      exportCreditMinor: bill.exportCreditMinor,
      taxesMinor: bill.taxesMinor,
      totalMinor: bill.totalMinor,
      baseTotalMinor: bill.totalMinor,
      adjustmentMinor: 0,
      estimated: false,
      flags,
      source: "rollups",
    };
    const json = stableJson(content);
    bills.push({
      meterId,
      json,
      sha: createHash("sha256").update(json).digest("hex"),
      importKwh,
      totalMinor: bill.totalMinor,
    });
    result.totalMinor += bill.totalMinor;
  }
  result.fallback = [...fallback].map(([meterId, reason]) => ({ meterId, reason }));
  if (bills.length === 0) return result;

  // Existing live drafts (unchanged ones are left alone) and the next version after cancelled ones.
  const { rows: existingRows } = await tx.query<{ meter_id: string; sha: string | null; version: number | null }>(
    `SELECT meter_id, max(content_sha256) FILTER (WHERE status = 'draft') AS sha, max(version) AS version
       FROM bills WHERE meter_id = ANY($1::text[]) AND period = $2 GROUP BY meter_id`,
    [bills.map((bill) => bill.meterId), period.period],
  );
  const existing = new Map(existingRows.map((row) => [row.meter_id, row]));
  const values: unknown[] = [];
  const tuples: string[] = [];
  for (const bill of bills) {
    const before = existing.get(bill.meterId);
    if (before?.sha != null) {
      if (before.sha === bill.sha) result.unchanged++;
      else result.updated++;
    } else result.created++;
    result.written++;
    if (before?.sha === bill.sha) continue;
    const n = values.length;
    tuples.push(
      `($${n + 1}, $${n + 2}, $${n + 3}::int, 'draft', $${n + 4}::bigint, $${n + 5}, $${n + 6}, $${n + 7}, $${n + 8}, false, $${n + 9}::jsonb, $${n + 10}, $${n + 11}::timestamptz, $${n + 11}::timestamptz)`,
    );
    values.push(
      bill.meterId,
      period.period,
      before?.sha == null ? Number(before?.version ?? 0) + 1 : Number(before.version),
      input.runId,
      tariff.currency,
      period.zone,
      bill.importKwh,
      bill.totalMinor,
      bill.json,
      bill.sha,
      input.now.toISOString(),
    );
  }
  if (tuples.length > 0 && input.dryRun !== true) {
    // Idempotent: an identical draft is left alone; a finalised bill is never touched here.
    await tx.query(
      `INSERT INTO bills (meter_id, period, version, status, run_id, currency, time_zone, import_kwh, total_minor, estimated,
         content, content_sha256, created_at, updated_at) VALUES ${tuples.join(", ")}
       ON CONFLICT (meter_id, period) WHERE status <> 'cancelled' DO UPDATE SET
         run_id = EXCLUDED.run_id, import_kwh = EXCLUDED.import_kwh, total_minor = EXCLUDED.total_minor,
         estimated = EXCLUDED.estimated, content = EXCLUDED.content, content_sha256 = EXCLUDED.content_sha256,
         updated_at = EXCLUDED.updated_at
       WHERE bills.status = 'draft' AND bills.content_sha256 <> EXCLUDED.content_sha256`,
      values,
    );
  }
  return result;
}
