import { createHash } from "node:crypto";
import type { SqlExecutor } from "../store/sqlClient.js";
import { stableJson } from "./canonicalJson.js";
import { billPeriod, type PeriodAggregates } from "./engine.js";
import { type BillingPeriod, calendarFor } from "./periods.js";
import type { UrdbTariff } from "./tariff.js";
import { QUALITY, type QualityOfReading, type VeeFlag } from "./vee.js";

/**
 * The bulk billing path for fleets: bills thousands of meters per statement from what the
 * store keeps after ingest — the hourly rollups (`consumption_hourly`), the synced register
 * reads either side of each boundary, and the peaks — instead of each meter's raw readings.
 *
 * ONE statement per chunk of meters (`chunkStatement`) reads everything a bill needs, set-based:
 * the chunk's rollups for the period plus the hour either side, mapped to the tariff's classes
 * (TOU energy period × demand period × local day, from the 12×24 schedules in the meter's zone,
 * joined by hour) and folded per meter into: the quality counts, kWh per class (→ energy
 * periods and local days), export per energy period, the peak per demand period; and the four
 * boundary reads. The run (`billFromRollups`) streams the fleet through it chunk by chunk in
 * meter order: reader connections on the run's snapshot aggregate the next chunks while this
 * process bills the current one and the run's transaction writes the previous one, each chunk's
 * bills in one multi-row INSERT. Nothing is fetched per meter. Special cases and existing bills
 * are read once per run (`loadRunContext`).
 *
 * VEE on this path: the opening/closing register values are interpolated between the last read
 * before and the first after each boundary (unsynced reads excluded); a missing side is an
 * estimated boundary; the rollup total must agree with the register difference within 0.1 %
 * (+ 0.001 kWh) — when it does, the period kWh are scaled to the register difference so the
 * bill equals it exactly. Meters with a mid-period tariff change, exchange or finalised bill take
 * the detailed path (billingRun.ts).
 *
 * Data quality comes from the rollups themselves (migrations/0004_rollup_quality.sql): a meter
 * is billed here only when every hour of the period, plus the hour before it and the hour after
 * it (where the boundary reads lie), has the same number of reads (≥ 1), no unsynced read and no
 * interval longer than ROLLUP_GAP_MS. Anything else — a gap (an hour with fewer reads than the
 * others, or a long interval), an unsynced clock, a missing boundary read, rollups that disagree
 * with the register difference (rollover, negative consumption, a spike), a meter exchange, a
 * pending adjustment or a finalised bill — is returned in `fallback` for the detailed VEE on raw
 * readings (billingRun.ts). So a bill from this path never used an estimate, and the detailed
 * path still marks every bill that did. A zone whose UTC offset is not a whole number of hours
 * during the period (India, Newfoundland, Lord Howe in summer…) cannot be split by UTC-hour
 * rollups: its meters all take the detailed path.
 */

/** Where the time of a run went (ms), filled in when the caller passes an object. */
export type BillingTimings = Record<string, number>;

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

/** Meters under one tariff for the whole period, in one zone. */
export interface RollupGroup {
  tariff: UrdbTariff;
  /** Stamped on each line; optional for the benchmark and tools. */
  tariffId?: string | undefined;
  period: BillingPeriod;
  meterIds: readonly string[];
}

export interface RollupRunInput {
  groups: readonly RollupGroup[];
  /** "2026-10" */
  period: string;
  runId: number | null;
  now: Date;
  dryRun: boolean;
  /** Meters per statement. */
  chunkSize?: number;
  timings?: BillingTimings;
  /** After each chunk: how many meters it billed. */
  onChunk?: (billed: number) => void;
  /** Look up special cases and existing bills for these meters only (default: the whole period). */
  contextMeters?: readonly string[];
  /**
   * Connections (read-only transactions on the run's snapshot) that run the chunk statements in
   * parallel, one chunk each at a time; the run's own transaction writes. Default: the run's
   * transaction alone, reading and writing in turn.
   */
  readers?: readonly SqlExecutor[];
}

/** Why a meter's rollups are not enough for a bill, or null when they are (see the header). */
export function rollupQualityProblem(
  row: { hours: number; rmin: number; rmax: number; bad: number } | undefined,
  expectedHours: number,
): string | null {
  if (row === undefined) return "no rollups in the period";
  if (Number(row.hours) < expectedHours) return `rollups for ${row.hours} of ${expectedHours} hours`;
  if (Number(row.rmin) < 1) return "an hour without reads (or rollups without quality counts)";
  if (Number(row.rmin) !== Number(row.rmax)) return `reads per hour vary (${row.rmin}…${row.rmax}): a gap`;
  if (Number(row.bad) > 0) return "interpolated across a gap, or unsynced reads";
  return null;
}

const HOUR_MS = 3_600_000;
/** Meters per statement: ~1.5 M rollup rows, a hash table of ~100 MB at most. */
export const ROLLUP_CHUNK = 2_000;

/** The tariff's classes for one period in one zone, and the statement that folds rollups into them. */
interface ChunkPlan {
  /** UTC hour starts of the period and the hour either side (ISO), and each one's class. */
  hourStarts: string[];
  hourClasses: (number | null)[];
  /** Per class (0, 1, …): energy period, demand period, local day (0 = the 1st). */
  classIds: number[];
  classEp: number[];
  classDp: number[];
  classDay: number[];
  energyPeriods: number;
  demandPeriods: number;
  sql: string;
}

const plans = new Map<string, ChunkPlan>();

/** True when every hour of the period starts on a local hour (UTC-hour rollups map to TOU hours). */
export function hourAligned(period: BillingPeriod): boolean {
  const calendar = calendarFor(period.zone);
  if (period.startMs % HOUR_MS !== 0 || period.endMs % HOUR_MS !== 0) return false;
  for (let ms = period.startMs; ms < period.endMs; ms += HOUR_MS) {
    if (calendar.offsetMs(ms) % HOUR_MS !== 0) return false;
  }
  return true;
}

function planFor(tariff: UrdbTariff, period: BillingPeriod): ChunkPlan {
  const key = `${period.period}|${period.zone}|${stableJson([
    tariff.energyratestructure?.length ?? 1,
    tariff.demandratestructure?.length ?? 0,
    tariff.energyweekdayschedule,
    tariff.energyweekendschedule,
    tariff.demandweekdayschedule,
    tariff.demandweekendschedule,
  ])}`;
  const cached = plans.get(key);
  if (cached !== undefined) return cached;
  const calendar = calendarFor(period.zone);
  const energyPeriods = tariff.energyratestructure?.length ?? 1;
  const demandPeriods = tariff.demandratestructure?.length ?? 0;
  const plan: ChunkPlan = {
    hourStarts: [],
    hourClasses: [],
    classIds: [],
    classEp: [],
    classDp: [],
    classDay: [],
    energyPeriods,
    demandPeriods,
    sql: "",
  };
  const classes = new Map<string, number>();
  for (let ms = period.startMs; ms < period.endMs; ms += HOUR_MS) {
    const local = calendar.localTime(ms);
    const weekend = local.weekday === 0 || local.weekday === 6;
    const pick = (weekday: number[][] | undefined, weekendRows: number[][] | undefined) =>
      (weekend ? weekendRows : weekday)?.[local.month - 1]?.[local.hour] ?? 0;
    const ep = pick(tariff.energyweekdayschedule, tariff.energyweekendschedule);
    const dp = pick(tariff.demandweekdayschedule, tariff.demandweekendschedule);
    const day = local.day - 1;
    const classKey = `${ep},${dp},${day}`;
    let cls = classes.get(classKey);
    if (cls === undefined) {
      cls = classes.size;
      classes.set(classKey, cls);
      plan.classIds.push(cls);
      plan.classEp.push(ep);
      plan.classDp.push(dp);
      plan.classDay.push(day);
    }
    plan.hourStarts.push(new Date(ms).toISOString());
    plan.hourClasses.push(cls);
  }
  // The hours either side of the period (boundary reads) join with no class: quality only.
  plan.hourStarts.unshift(new Date(period.startMs - HOUR_MS).toISOString());
  plan.hourClasses.unshift(null);
  plan.hourStarts.push(new Date(period.endMs).toISOString());
  plan.hourClasses.push(null);
  plan.sql = chunkStatement(energyPeriods, demandPeriods);
  if (plans.size > 200) plans.clear();
  plans.set(key, plan);
  return plan;
}

/**
 * The statement for one chunk. Parameters: $1 meter ids, $2/$3 hour starts and their classes,
 * $4…$6 class → energy period, demand period, $7/$8 period start and end.
 *
 * Two GROUP BY levels, both hash aggregates: rollup hours → (meter, class) [~100 classes a
 * month] → meter, with the classes and their kWh as two arrays (folded into energy periods and
 * local days here, ~100 numbers a meter), export per energy period and peak per demand period
 * as FILTERed sums/maxima. The hours either side of the period have no class: they count for
 * quality only. The quality counts fold into: hours present, min/max reads per hour, and `bad`
 * (any gap interval or unsynced read). Then four bounded index probes per meter for the
 * boundary reads: the quality check guarantees a synced read in the hour either side of each
 * boundary, so the last read at or before it and the first at or after it lie within that hour.
 */
function chunkStatement(energyPeriods: number, demandPeriods: number): string {
  const range = (n: number) => Array.from({ length: n }, (_, index) => index);
  const array = (items: string[]) => (items.length === 0 ? "'{}'::float8[]" : `ARRAY[${items.join(", ")}]`);
  const exports = array(range(energyPeriods).map((ep) => `coalesce(sum(p.exp) FILTER (WHERE k.ep = ${ep}), 0)`));
  const peaks = array(range(demandPeriods).map((dp) => `coalesce(max(p.peak) FILTER (WHERE k.dp = ${dp}), 0)`));
  const probe = (at: string, before: boolean) =>
    `LEFT JOIN LATERAL (SELECT trunc(extract(epoch FROM r.ts) * 1000)::float8 AS t, r.import_energy_kwh AS v FROM readings r
        WHERE r.meter_id = m.meter_id AND r.clock = 'synced' AND r.import_energy_kwh IS NOT NULL
          AND ${before ? `r.ts <= ${at} AND r.ts >= ${at} - interval '1 hour'` : `r.ts >= ${at} AND r.ts < ${at} + interval '1 hour'`}
        ORDER BY r.ts ${before ? "DESC" : ""} LIMIT 1)`;
  // DISTINCT ON tells the planner the hours are unique, so it hashes them (747 rows), not the rollups.
  return `WITH hours AS (SELECT DISTINCT ON (hour_start) hour_start, cls FROM unnest($2::timestamptz[], $3::int[]) AS h(hour_start, cls)),
  classes AS (SELECT * FROM unnest($4::int[], $5::int[], $6::int[]) AS k(cls, ep, dp)),
  per_class AS (
    SELECT c.meter_id, h.cls, count(*) AS n, min(c.readings) AS rmin, max(c.readings) AS rmax,
           max(abs(c.gap_intervals) + abs(c.unsynced_readings)) AS bad,
           sum(c.import_kwh) AS kwh, sum(c.export_kwh) AS exp, max(c.import_kwh) AS peak
      FROM consumption_hourly c JOIN hours h ON h.hour_start = c.hour_start
     WHERE c.meter_id = ANY($1::text[])
       AND c.hour_start >= $7::timestamptz - interval '1 hour' AND c.hour_start < $8::timestamptz + interval '1 hour'
     GROUP BY c.meter_id, h.cls),
  per_meter AS (
    SELECT p.meter_id, sum(p.n)::int AS hours, min(p.rmin) AS rmin, max(p.rmax) AS rmax, max(p.bad) AS bad,
           array_agg(p.cls) FILTER (WHERE p.cls IS NOT NULL) AS cls,
           array_agg(p.kwh) FILTER (WHERE p.cls IS NOT NULL) AS kwh,
           coalesce(max(p.peak) FILTER (WHERE p.cls IS NOT NULL), 0) AS pk,
           ${exports} AS x,
           ${peaks} AS p
      FROM per_class p LEFT JOIN classes k ON k.cls = p.cls
     GROUP BY p.meter_id)
SELECT m.*, o1.t AS o1t, o1.v AS o1v, o2.t AS o2t, o2.v AS o2v, c1.t AS c1t, c1.v AS c1v, c2.t AS c2t, c2.v AS c2v
  FROM per_meter m
  ${probe("$7::timestamptz", true)} o1 ON true
  ${probe("$7::timestamptz", false)} o2 ON true
  ${probe("$8::timestamptz", true)} c1 ON true
  ${probe("$8::timestamptz", false)} c2 ON true`;
}

interface ChunkRow {
  meter_id: string;
  hours: number;
  rmin: number;
  rmax: number;
  bad: number;
  /** The classes of the period's hours present, and their kWh (same order). */
  cls: number[] | null;
  kwh: number[] | null;
  pk: number;
  x: number[];
  p: number[];
  o1t: number | null;
  o1v: number | null;
  o2t: number | null;
  o2v: number | null;
  c1t: number | null;
  c1v: number | null;
  c2t: number | null;
  c2v: number | null;
}

/** What the run knows before the chunks: meters that must not be billed here, and existing bills. */
export interface RunContext {
  /** Meter → why it takes the detailed path (exchange, pending adjustment, finalised bill). */
  special: Map<string, string>;
  /** Meter → its live draft's SHA-256 (null when none) and the highest version of the period. */
  existing: Map<string, { sha: string | null; version: number }>;
}

/**
 * Exchanges around the period, adjustments waiting for this period's bill, and this period's
 * bills (finalised ones go to the detailed path, which turns a difference into an adjustment).
 * One statement each for the whole run (`meterIds` null), or for a list of meters.
 */
export async function loadRunContext(
  tx: SqlExecutor,
  period: string,
  startMs: number,
  endMs: number,
  meterIds: readonly string[] | null,
): Promise<RunContext> {
  const filter = (column: string) => (meterIds === null ? "" : `AND ${column} = ANY($4::text[])`);
  const params: unknown[] = [
    new Date(startMs - 48 * HOUR_MS).toISOString(),
    new Date(endMs + 48 * HOUR_MS).toISOString(),
    period,
  ];
  if (meterIds !== null) params.push(meterIds);
  const { rows: special } = await tx.query<{ meter_id: string; reason: string }>(
    `SELECT meter_id, 'meter exchange' AS reason FROM meter_exchanges
      WHERE exchanged_at >= $1::timestamptz AND exchanged_at <= $2::timestamptz ${filter("meter_id")}
     UNION ALL
     SELECT a.meter_id, 'pending adjustment' FROM bill_adjustments a JOIN bills b ON b.id = a.original_bill_id
      WHERE b.period < $3 AND (a.applied_in_period IS NULL OR a.applied_in_period = $3) ${filter("a.meter_id")}`,
    params,
  );
  const context: RunContext = { special: new Map(), existing: new Map() };
  for (const row of special) if (!context.special.has(row.meter_id)) context.special.set(row.meter_id, row.reason);
  const { rows: bills } = await tx.query<{
    meter_id: string;
    sha: string | null;
    version: number | string;
    finalised: boolean;
  }>(
    `SELECT meter_id, max(content_sha256) FILTER (WHERE status = 'draft') AS sha, max(version) AS version,
            bool_or(status = 'finalised') AS finalised
       FROM bills WHERE period = $1 ${meterIds === null ? "" : "AND meter_id = ANY($2::text[])"} GROUP BY meter_id`,
    meterIds === null ? [period] : [period, meterIds],
  );
  for (const row of bills) {
    context.existing.set(row.meter_id, { sha: row.sha, version: Number(row.version) });
    if (row.finalised && !context.special.has(row.meter_id)) context.special.set(row.meter_id, "finalised bill");
  }
  return context;
}

interface PreparedBill {
  meterId: string;
  json: string;
  sha: string;
  importKwh: number;
  totalMinor: number;
}

const clock = () => performance.now();

function addTime(timings: BillingTimings | undefined, phase: string, fromMs: number): number {
  const now = clock();
  if (timings !== undefined) timings[phase] = (timings[phase] ?? 0) + (now - fromMs);
  return now;
}

/** The bills of one chunk's rows (pure but for the clock); meters that cannot be billed here go to `fallback`. */
function billRows(
  rows: readonly ChunkRow[],
  meterIds: readonly string[],
  group: RollupGroup,
  plan: ChunkPlan,
  fallback: Map<string, string>,
  timings: BillingTimings | undefined,
): PreparedBill[] {
  const { tariff, period } = group;
  let t = clock();
  const byMeter = new Map<string, ChunkRow>();
  for (const row of rows) byMeter.set(row.meter_id, row);
  const expectedHours = period.hours + 2;
  const bills: PreparedBill[] = [];
  let veeMs = 0;
  let engineMs = 0;
  let serialiseMs = 0;
  for (const meterId of meterIds) {
    const row = byMeter.get(meterId);
    const problem = rollupQualityProblem(row, expectedHours);
    if (problem !== null || row === undefined) {
      fallback.set(meterId, problem ?? "no rollups in the period");
      continue;
    }
    const boundary = (t1: number | null, v1: number | null, t2: number | null, v2: number | null, atMs: number) => {
      if (t1 === null || t2 === null || v1 === null || v2 === null) return null;
      const ms1 = Number(t1);
      const ms2 = Number(t2);
      const value = ms2 === ms1 ? Number(v1) : Number(v1) + ((atMs - ms1) / (ms2 - ms1)) * (Number(v2) - Number(v1));
      return { atMs, registerKwh: value, quality: QUALITY.valid as QualityOfReading };
    };
    const opening = boundary(row.o1t, row.o1v, row.o2t, row.o2v, period.startMs);
    const closing = boundary(row.c1t, row.c1v, row.c2t, row.c2v, period.endMs);
    if (opening === null || closing === null) {
      // An estimated boundary: the detailed VEE estimates it and marks the bill.
      fallback.set(meterId, "no synced read on one side of a boundary");
      continue;
    }
    // Fold the classes' kWh into energy periods and local days (the quality check above saw every hour).
    const importByPeriod = new Array<number>(plan.energyPeriods).fill(0);
    const daily = new Array<number>(period.days).fill(0);
    const classes = row.cls ?? [];
    const classKwh = row.kwh ?? [];
    for (let index = 0; index < classes.length; index++) {
      const cls = Number(classes[index]);
      const kwh = Number(classKwh[index]);
      const ep = plan.classEp[cls] ?? 0;
      const day = plan.classDay[cls] ?? 0;
      importByPeriod[ep] = (importByPeriod[ep] ?? 0) + kwh;
      daily[day] = (daily[day] ?? 0) + kwh;
    }
    const rollupKwh = importByPeriod.reduce((sum, kwh) => sum + kwh, 0);
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
    const aggregate: PeriodAggregates = {
      importKwhByPeriod: importByPeriod.map((kwh) => kwh * scale),
      exportKwhByPeriod: row.x.map(Number),
      peakKwByDemandPeriod: row.p.map(Number),
      peakKw: Number(row.pk),
      estimated: false,
    };
    const dailyKwh = daily.map((kwh) => kwh * scale);
    const importKwh = aggregate.importKwhByPeriod.reduce((sum, kwh) => sum + kwh, 0);
    const flags: VeeFlag[] = [];
    if (importKwh === 0) flags.push({ code: "zero", atMs: period.startMs, detail: "no consumption in the period" });
    let now = clock();
    veeMs += now - t;
    t = now;
    const bill = billPeriod({
      tariff,
      month: period.month,
      daysInMonth: period.days,
      intervals: [],
      aggregates: aggregate,
    });
    now = clock();
    engineMs += now - t;
    t = now;
    const tariffId = group.tariffId;
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
    now = clock();
    serialiseMs += now - t;
    t = now;
  }
  if (timings !== undefined) {
    timings.vee = (timings.vee ?? 0) + veeMs;
    timings.engine = (timings.engine ?? 0) + engineMs;
    timings.serialise = (timings.serialise ?? 0) + serialiseMs;
  }
  return bills;
}

/** The multi-row upsert of a chunk's new and changed drafts (null when every bill is unchanged). */
function billsUpsert(
  bills: readonly PreparedBill[],
  context: RunContext,
  group: { tariff: UrdbTariff; period: BillingPeriod },
  runId: number | null,
  now: Date,
  result: RollupChunkResult,
): { sql: string; params: unknown[] } | null {
  const params: unknown[] = [group.period.period, runId, group.tariff.currency, group.period.zone, now.toISOString()];
  const tuples: string[] = [];
  for (const bill of bills) {
    const before = context.existing.get(bill.meterId);
    result.written++;
    result.totalMinor += bill.totalMinor;
    if (before?.sha != null) {
      if (before.sha === bill.sha) {
        result.unchanged++;
        continue;
      }
      result.updated++;
    } else result.created++;
    const n = params.length;
    tuples.push(
      `($${n + 1}, $1, $${n + 2}::int, 'draft', $2::bigint, $3, $4, $${n + 3}::float8, $${n + 4}::bigint, false, $${n + 5}::jsonb, $${n + 6}, $5::timestamptz, $5::timestamptz)`,
    );
    params.push(
      bill.meterId,
      before?.sha == null ? (before?.version ?? 0) + 1 : before.version,
      bill.importKwh,
      bill.totalMinor,
      bill.json,
      bill.sha,
    );
  }
  if (tuples.length === 0) return null;
  // Idempotent: an identical draft is left alone; a finalised bill is never touched here.
  return {
    sql: `INSERT INTO bills (meter_id, period, version, status, run_id, currency, time_zone, import_kwh, total_minor, estimated,
         content, content_sha256, created_at, updated_at) VALUES ${tuples.join(", ")}
       ON CONFLICT (meter_id, period) WHERE status <> 'cancelled' DO UPDATE SET
         run_id = EXCLUDED.run_id, import_kwh = EXCLUDED.import_kwh, total_minor = EXCLUDED.total_minor,
         estimated = EXCLUDED.estimated, content = EXCLUDED.content, content_sha256 = EXCLUDED.content_sha256,
         updated_at = EXCLUDED.updated_at
       WHERE bills.status = 'draft' AND bills.content_sha256 <> EXCLUDED.content_sha256`,
    params,
  };
}

function emptyResult(): RollupChunkResult {
  return { written: 0, created: 0, updated: 0, unchanged: 0, estimated: 0, totalMinor: 0, fallback: [] };
}

function chunkParams(plan: ChunkPlan, period: BillingPeriod, meterIds: readonly string[]): unknown[] {
  return [
    meterIds,
    plan.hourStarts,
    plan.hourClasses,
    plan.classIds,
    plan.classEp,
    plan.classDp,
    new Date(period.startMs).toISOString(),
    new Date(period.endMs).toISOString(),
  ];
}

/** The bulk statement and its parameters for some meters (for EXPLAIN in the benchmark and tools). */
export function rollupChunkStatement(
  tariff: UrdbTariff,
  period: BillingPeriod,
  meterIds: readonly string[],
): { sql: string; params: unknown[] } {
  const plan = planFor(tariff, period);
  return { sql: plan.sql, params: chunkParams(plan, period, meterIds) };
}

/**
 * Bills every group's meters from rollups, chunk by chunk, on one connection: the statement for
 * the next chunk is sent before this process bills the current one, and the current chunk's
 * INSERT queues behind it, so the server and this process work at the same time. Returns the
 * totals and the meters for the detailed path.
 */
export async function billFromRollups(tx: SqlExecutor, input: RollupRunInput): Promise<RollupChunkResult> {
  const { timings } = input;
  let t = clock();
  const result = emptyResult();
  const fallback = new Map<string, string>();
  const chunkSize = Math.max(1, input.chunkSize ?? ROLLUP_CHUNK);
  const first = input.groups[0];
  if (first === undefined) return result;
  const context = await loadRunContext(
    tx,
    input.period,
    first.period.startMs,
    first.period.endMs,
    input.contextMeters ?? null,
  );
  t = addTime(timings, "context", t);

  interface Chunk {
    group: RollupGroup;
    plan: ChunkPlan;
    meterIds: string[];
  }
  const chunks: Chunk[] = [];
  for (const group of input.groups) {
    if (!hourAligned(group.period)) {
      for (const meterId of group.meterIds) fallback.set(meterId, `zone ${group.period.zone}: not whole-hour offsets`);
      continue;
    }
    const plan = planFor(group.tariff, group.period);
    const eligible = group.meterIds.filter((meterId) => {
      const reason = context.special.get(meterId);
      if (reason !== undefined) fallback.set(meterId, reason);
      return reason === undefined;
    });
    for (let index = 0; index < eligible.length; index += chunkSize) {
      chunks.push({ group, plan, meterIds: eligible.slice(index, index + chunkSize) });
    }
  }
  // Workers, one per reader connection, take the next chunk, aggregate it, bill it and queue its
  // INSERT on the writer (the run's transaction), one statement at a time per connection. With
  // no reader of its own the run's transaction reads too, strictly after its pending write.
  const readers = input.readers !== undefined && input.readers.length > 0 ? input.readers : [tx];
  let failure: { error: unknown } | null = null;
  let nextChunk = 0;
  let writeChain: Promise<void> = Promise.resolve();
  let pendingWrites = 0;
  const write = (sql: string, params: unknown[]) => {
    pendingWrites++;
    writeChain = writeChain.then(async () => {
      try {
        if (failure !== null) return;
        const started = clock();
        await tx.query(sql, params);
        addTime(timings, "writes", started);
      } catch (error) {
        failure ??= { error };
      } finally {
        pendingWrites--;
      }
    });
  };
  const worker = async (reader: SqlExecutor) => {
    while (failure === null) {
      const chunk = chunks[nextChunk++];
      if (chunk === undefined) return;
      // Bounded memory: bills wait for at most two chunks' writes.
      if (reader === tx || pendingWrites > readers.length + 1) await writeChain;
      if (failure !== null) return;
      let started = clock();
      const { rows } = await reader.query<ChunkRow>(
        chunk.plan.sql,
        chunkParams(chunk.plan, chunk.group.period, chunk.meterIds),
      );
      addTime(timings, "aggregates", started);
      const bills = billRows(rows, chunk.meterIds, chunk.group, chunk.plan, fallback, timings);
      started = clock();
      const upsert = billsUpsert(bills, context, chunk.group, input.runId, input.now, result);
      if (upsert !== null && input.dryRun !== true) write(upsert.sql, upsert.params);
      addTime(timings, "prepareWrites", started);
      input.onChunk?.(bills.length);
    }
  };
  await Promise.all(
    readers.map((reader) =>
      worker(reader).catch((error: unknown) => {
        failure ??= { error };
      }),
    ),
  );
  await writeChain;
  if (failure !== null) throw (failure as { error: unknown }).error;
  addTime(timings, "chunks", t);
  // Meters handed to the detailed path are not billed here.
  result.fallback = [...fallback].map(([meterId, reason]) => ({ meterId, reason }));
  return result;
}

/**
 * One chunk on its own (tests, tools): the meters' special cases and existing bills are looked
 * up for them alone.
 */
export async function billRollupChunk(tx: SqlExecutor, input: RollupChunkInput): Promise<RollupChunkResult> {
  return billFromRollups(tx, {
    groups: [{ tariff: input.tariff, tariffId: input.tariffId, period: input.period, meterIds: input.meterIds }],
    period: input.period.period,
    runId: input.runId,
    now: input.now,
    dryRun: input.dryRun === true,
    chunkSize: Math.max(1, input.meterIds.length),
    contextMeters: input.meterIds,
  });
}
