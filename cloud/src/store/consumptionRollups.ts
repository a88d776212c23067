import { EdgemeterError } from "@edgemeter/shared";

/**
 * Consumption rollups from cumulative energy registers (cloud/README.md "Rollups").
 *
 * The consumption between two consecutive readings of a meter is the difference of their
 * register values. It is spread over the buckets (UTC hours, local days) the interval spans
 * by linear interpolation at the bucket boundaries: a bucket gets the share of the delta
 * that its overlap is of the interval. That is the register value a straight line between
 * the two readings would show at the boundary — the usual estimation rule for interval data
 * with missed reads (e.g. Ofgem/Elexon BSCP502 and the AEMO MDFF "substitution by
 * interpolation"), and it makes bucket totals add up exactly to register differences.
 *
 * A register that goes backwards (reset, meter replacement) contributes nothing for that one
 * interval: what was consumed between the last reading on the old register and the first on
 * the new one is unknown. Counting resumes from the new register value.
 *
 * Late and out-of-order readings: a reading landing between two stored ones replaces the
 * interval (prev, next) by (prev, new) and (new, next); the rollups get the difference.
 */

export const HOUR_MS = 60 * 60 * 1000;

export interface RegisterPoint {
  tsMs: number;
  kwh: number;
}

/** A key per bucket with the bucket's consumption change (kWh). */
export type BucketDeltas = Map<string, number>;

interface Bucket {
  key: string;
  startMs: number;
  endMs: number;
}

type BucketsOf = (fromMs: number, toMs: number) => Bucket[];

/** The consumption of one interval; a backwards register (reset, replacement) counts zero. */
export function intervalKwh(from: RegisterPoint, to: RegisterPoint): number {
  const delta = to.kwh - from.kwh;
  return delta > 0 ? delta : 0;
}

function apportion(from: RegisterPoint, to: RegisterPoint, sign: 1 | -1, bucketsOf: BucketsOf, out: BucketDeltas) {
  const kwh = intervalKwh(from, to);
  if (kwh === 0 || to.tsMs <= from.tsMs) return;
  const span = to.tsMs - from.tsMs;
  for (const bucket of bucketsOf(from.tsMs, to.tsMs)) {
    const overlap = Math.min(bucket.endMs, to.tsMs) - Math.max(bucket.startMs, from.tsMs);
    if (overlap <= 0) continue;
    out.set(bucket.key, (out.get(bucket.key) ?? 0) + (sign * kwh * overlap) / span);
  }
}

/**
 * The change to the buckets when the readings marked `isNew` join a meter's series. `points`
 * is the meter's series, oldest first, covering at least one stored reading either side of
 * the new ones (when such exist).
 */
export function rollupDeltas(
  points: readonly (RegisterPoint & { isNew: boolean })[],
  bucketsOf: BucketsOf,
): BucketDeltas {
  const out: BucketDeltas = new Map();
  forEachIntervalChange(points, (from, to, sign) => apportion(from, to, sign, bucketsOf, out));
  return out;
}

/**
 * The intervals that change when the readings marked `isNew` join the series: each new
 * interval with sign +1, each stored interval a new reading splits with sign −1.
 */
function forEachIntervalChange<P extends RegisterPoint & { isNew: boolean }>(
  points: readonly P[],
  change: (from: P, to: P, sign: 1 | -1) => void,
): void {
  let previousOld: P | null = null;
  let previous: P | null = null;
  for (const point of points) {
    if (previous !== null && (previous.isNew || point.isNew)) change(previous, point, 1);
    if (!point.isNew) {
      // An old interval that a new reading now splits is taken out; untouched ones stay.
      if (previousOld !== null && previous !== previousOld) change(previousOld, point, -1);
      previousOld = point;
    }
    previous = point;
  }
}

/**
 * Data quality of an hourly bucket (migrations/0004_rollup_quality.sql), so billing can tell
 * from the rollups alone whether an hour holds measured or interpolated consumption:
 * - `readings`: register reads stamped inside the hour;
 * - `unsyncedReadings`: those of them with an unsynchronised clock (DESIGN "Time");
 * - `gapIntervals`: intervals between consecutive reads longer than `gapMs` that overlap the
 *   hour, i.e. the hour's consumption was (partly) interpolated across a gap.
 * All three are counts, so a late or out-of-order batch is applied as a difference exactly
 * like the kWh: a reading that splits a gap takes the gap's interval out (−1) and adds the two
 * shorter ones (+1 each when still longer than `gapMs`).
 */
export interface BucketQuality {
  readings: number;
  unsyncedReadings: number;
  gapIntervals: number;
}

/**
 * Gap threshold: 3 × the 15-minute interval of billing register reads (the demand/TOU
 * interval of IEC 62056 / DLMS load profiles). Billing (cloud/src/billing/billingRun.ts)
 * additionally treats an hour with fewer reads than the meter's other hours as a gap.
 */
export const ROLLUP_GAP_MS = 3 * 15 * 60 * 1000;

/** The change to each UTC hour's quality counts (key: the hour's start in ms). */
export function qualityDeltas(
  points: readonly (RegisterPoint & { isNew: boolean; unsynced?: boolean })[],
  gapMs: number = ROLLUP_GAP_MS,
): Map<string, BucketQuality> {
  const out = new Map<string, BucketQuality>();
  const at = (hourMs: number): BucketQuality => {
    const key = String(hourMs);
    let entry = out.get(key);
    if (entry === undefined) {
      entry = { readings: 0, unsyncedReadings: 0, gapIntervals: 0 };
      out.set(key, entry);
    }
    return entry;
  };
  for (const point of points) {
    if (!point.isNew) continue;
    const entry = at(Math.floor(point.tsMs / HOUR_MS) * HOUR_MS);
    entry.readings++;
    if (point.unsynced === true) entry.unsyncedReadings++;
  }
  forEachIntervalChange(points, (from, to, sign) => {
    if (to.tsMs - from.tsMs <= gapMs) return;
    for (const bucket of hourBuckets(from.tsMs, to.tsMs)) at(bucket.startMs).gapIntervals += sign;
  });
  return out;
}

/** UTC hours; the key is the hour's start in ms. */
export function hourBuckets(fromMs: number, toMs: number): Bucket[] {
  const buckets: Bucket[] = [];
  for (let start = Math.floor(fromMs / HOUR_MS) * HOUR_MS; start < toMs; start += HOUR_MS) {
    buckets.push({ key: String(start), startMs: start, endMs: start + HOUR_MS });
  }
  return buckets;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    try {
      formatter = new Intl.DateTimeFormat("en-US", {
        timeZone,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      });
    } catch {
      throw new EdgemeterError("config.timeZone", `unknown IANA time zone '${timeZone}'`, { context: { timeZone } });
    }
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** True when Intl knows the zone (IANA name such as Europe/Berlin). */
export function isTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function localParts(ms: number, timeZone: string): LocalParts {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(new Date(ms))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  return parts as unknown as LocalParts;
}

/** The zone's offset from UTC at an instant, in ms (local − UTC). */
function offsetMs(ms: number, timeZone: string): number {
  const p = localParts(ms, timeZone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

/** The UTC instant a local calendar day starts (midnight, or the first existing time after it). */
export function localDayStartMs(year: number, month: number, day: number, timeZone: string): number {
  const wall = Date.UTC(year, month - 1, day);
  let guess = wall - offsetMs(wall, timeZone);
  guess = wall - offsetMs(guess, timeZone);
  return guess;
}

/** "YYYY-MM-DD" of the local day an instant falls in. */
export function localDate(ms: number, timeZone: string): string {
  const p = localParts(ms, timeZone);
  return isoDate(p.year, p.month, p.day);
}

export function isoDate(year: number, month: number, day: number): string {
  const d = new Date(Date.UTC(year, month - 1, day));
  return d.toISOString().slice(0, 10);
}

interface DayCache {
  /** The day found last: consecutive readings of a meter mostly fall in it. */
  last: Bucket | null;
  byDate: Map<string, Bucket>;
}

/** Day boundaries per zone, so the ingest does not call Intl for every interval. */
const dayCaches = new Map<string, DayCache>();
const MAX_CACHED_DAYS = 20_000;

function dayBucket(year: number, month: number, day: number, timeZone: string, cache: DayCache): Bucket {
  const key = isoDate(year, month, day);
  let bucket = cache.byDate.get(key);
  if (bucket === undefined) {
    if (cache.byDate.size >= MAX_CACHED_DAYS) cache.byDate.clear();
    bucket = {
      key,
      startMs: localDayStartMs(year, month, day, timeZone),
      endMs: localDayStartMs(year, month, day + 1, timeZone),
    };
    cache.byDate.set(key, bucket);
  }
  return bucket;
}

function dayContaining(ms: number, timeZone: string): Bucket {
  let cache = dayCaches.get(timeZone);
  if (cache === undefined) {
    cache = { last: null, byDate: new Map() };
    dayCaches.set(timeZone, cache);
  }
  const last = cache.last;
  if (last !== null && last.startMs <= ms && ms < last.endMs) return last;
  const p = localParts(ms, timeZone);
  let bucket = dayBucket(p.year, p.month, p.day, timeZone, cache);
  // A day that starts after local midnight (a DST jump at 00:00) holds the instants before its start.
  if (ms < bucket.startMs) bucket = dayBucket(p.year, p.month, p.day - 1, timeZone, cache);
  cache.last = bucket;
  return bucket;
}

/** Local calendar days of `timeZone` (23, 24 or 25 hours long); the key is "YYYY-MM-DD". */
export function localDayBuckets(timeZone: string): BucketsOf {
  return (fromMs, toMs) => {
    const buckets: Bucket[] = [];
    let bucket = dayContaining(fromMs, timeZone);
    for (;;) {
      buckets.push(bucket);
      if (bucket.endMs >= toMs) break;
      bucket = dayContaining(bucket.endMs, timeZone);
    }
    return buckets;
  };
}
