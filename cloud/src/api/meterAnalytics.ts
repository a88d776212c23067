/**
 * The statistics behind the seed-compatible `/anomaly` and `/forecast` routes until trained
 * models exist (cloud/README.md "Anomaly band and forecast"). Pure functions over daily
 * consumption, so they are tested with exact numbers.
 */

export interface DailyPoint {
  /** "YYYY-MM-DD" (the meter's local day). */
  day: string;
  kwh: number;
}

/** Days of history before `data_start` the anomaly baseline and the forecast look at. */
export const BASELINE_DAYS = 84;
/** Band half-width in robust standard deviations (MAD × 1.4826 estimates σ for normal data). */
export const BAND_SIGMAS = 3;
export const MAD_TO_SIGMA = 1.4826;
/** Minimum half-width as a fraction of the median, so a perfectly regular meter is not flagged for 1 Wh. */
export const MIN_BAND_FRACTION = 0.05;

const DAY_MS = 24 * 60 * 60 * 1000;

export function dayMs(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
}

export function addDays(day: string, days: number): string {
  return new Date(dayMs(day) + days * DAY_MS).toISOString().slice(0, 10);
}

function weekday(day: string): number {
  return new Date(dayMs(day)).getUTCDay();
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface AnomalyRow {
  day: string;
  consumption: number;
  yhatLower: number;
  yhatUpper: number;
  /** 1 above the band, -1 below it, 0 inside. */
  anomaly: -1 | 0 | 1;
  /** How far outside the band, relative to the consumption (0 inside), as the seed platform reports it. */
  importance: number;
}

/**
 * A band per weekday: median ± max(3 × 1.4826 × MAD, 5 % of the median) of that weekday's
 * daily consumption over `history` (the days the caller passes: the 84 days before the range
 * and the range itself — median and MAD ignore a minority of outliers, so the days judged may
 * be part of their own baseline). The lower bound is clipped at 0.
 */
export function anomalyBand(history: readonly DailyPoint[], evaluated: readonly DailyPoint[]): AnomalyRow[] {
  const byWeekday = new Map<number, number[]>();
  for (const point of history) {
    const list = byWeekday.get(weekday(point.day)) ?? [];
    list.push(point.kwh);
    byWeekday.set(weekday(point.day), list);
  }
  return evaluated.map((point) => {
    const values = byWeekday.get(weekday(point.day)) ?? [point.kwh];
    const center = median(values);
    const mad = median(values.map((v) => Math.abs(v - center)));
    const half = Math.max(BAND_SIGMAS * MAD_TO_SIGMA * mad, MIN_BAND_FRACTION * Math.abs(center));
    const yhatLower = Math.max(0, center - half);
    const yhatUpper = center + half;
    const anomaly = point.kwh > yhatUpper ? 1 : point.kwh < yhatLower ? -1 : 0;
    const importance =
      anomaly === 0 || point.kwh === 0
        ? 0
        : Math.abs(point.kwh - (anomaly === 1 ? yhatUpper : yhatLower)) / Math.abs(point.kwh);
    return { day: point.day, consumption: point.kwh, yhatLower, yhatUpper, anomaly, importance };
  });
}

/**
 * Seasonal-naive forecast with a weekly season: each day of [fromDay, toDay) gets the
 * consumption of the latest observed day with the same weekday before `fromDay`
 * (Hyndman & Athanasopoulos, FPP3 §5.2 "Seasonal naïve method"). Days whose weekday has no
 * history are left out.
 */
export function seasonalNaiveForecast(history: readonly DailyPoint[], fromDay: string, toDay: string): DailyPoint[] {
  const latest = new Map<number, DailyPoint>();
  for (const point of history) {
    if (point.day >= fromDay) continue;
    const w = weekday(point.day);
    const current = latest.get(w);
    if (current === undefined || point.day > current.day) latest.set(w, point);
  }
  const out: DailyPoint[] = [];
  for (let day = fromDay; day < toDay; day = addDays(day, 1)) {
    const source = latest.get(weekday(day));
    if (source !== undefined) out.push({ day, kwh: source.kwh });
  }
  return out;
}
