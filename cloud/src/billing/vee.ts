import type { BillingCalendar } from "./calendar.js";
import type { BillingPeriod } from "./periods.js";

/**
 * Validation, estimation and editing (VEE) of one meter's register reads for one billing
 * period, before any bill. Pure.
 *
 * Quality flags use the Green Button / NAESB ESPI `QualityOfReading` codes
 * (NAESB REQ.21 ESPI, espiDerived.xsd `QualityOfReading`):
 * 0 valid, 8 estimated using reference day, 9 estimated using linear interpolation,
 * 10 questionable, 11 derived, 14 raw. A bill that used any interval of quality 8 or 9 (or an
 * estimated boundary read) is marked estimated.
 *
 * Rules (each check raises a flag with the instant and a reason):
 * - unsynced: reads stamped `clock:"unsynced"` are never used (DESIGN "Time": an unsynced
 *   reading must not decide a billing boundary); the boundary is interpolated from synced reads.
 * - gap: two consecutive reads further apart than 1.5 intervals. Up to `shortGapMs` (default
 *   3 h) the consumption between them is spread linearly (9); longer gaps are shaped like the
 *   same hours of like days (same weekday/weekend type) of the period's valid data (8). The
 *   register difference across the gap is kept exactly either way.
 * - rollover: a register decrease that, wrapped at 10^registerDigits kWh, is a plausible
 *   consumption (under the high limit) is counted as the wrapped difference.
 * - exchange: an exchange record (old meter's final read, new meter's first read) between two
 *   reads: consumption = (old final − last old read) + (first new read... − new start).
 * - negative: any other decrease counts zero for that interval (questionable, 10) and counting
 *   resumes from the new value.
 * - spike: a read whose rise implies more than `maxKw` and that the next read falls back from
 *   is a misread: dropped. A rise above the limit that stays is kept, marked questionable.
 * - zero: no consumption in the whole period although reads exist.
 * - noReads: no synced read around the period at all: the whole period is estimated from
 *   `fallbackKwhPerHour` (the meter's history), quality 8.
 * - boundaryEstimated: no read on one side of a boundary: the boundary register value is
 *   extrapolated at the meter's average rate (8).
 * - intervalMismatch: `intervalSumKwh` (e.g. from the store's hourly rollups) differs from the
 *   register difference at the boundaries by more than 0.1 % (+ 0.001 kWh).
 */
export const QUALITY = {
  valid: 0,
  estimatedReferenceDay: 8,
  estimatedLinear: 9,
  questionable: 10,
  derived: 11,
  raw: 14,
} as const;
export type QualityOfReading = (typeof QUALITY)[keyof typeof QUALITY];

export interface RegisterRead {
  tsMs: number;
  importKwh: number;
  exportKwh?: number | undefined;
  clock: "synced" | "unsynced";
}

/** A meter exchange: the old meter's last register value and the new one's first. */
export interface MeterExchange {
  atMs: number;
  oldFinalImportKwh: number;
  newStartImportKwh: number;
  oldFinalExportKwh?: number;
  newStartExportKwh?: number;
}

export interface VeeOptions {
  /** Integer digits of the register display: it rolls over at 10^digits kWh. */
  registerDigits?: number | undefined;
  /** High limit: more average kW than this between two reads is a spike. Default 250. */
  maxKw?: number | undefined;
  /** Expected read interval. Default: the median spacing of the meter's reads. */
  readIntervalMs?: number | undefined;
  /** Longest gap estimated linearly; longer ones use like days. Default 3 hours. */
  shortGapMs?: number | undefined;
  exchanges?: readonly MeterExchange[] | undefined;
  /** Estimate for a period without any read (kWh per hour), e.g. last year's average. */
  fallbackKwhPerHour?: number | undefined;
  /** The interval total the store holds for the period (rollups), checked against registers. */
  intervalSumKwh?: number | undefined;
}

export type VeeFlagCode =
  | "unsynced"
  | "gap"
  | "rollover"
  | "exchange"
  | "negative"
  | "spike"
  | "zero"
  | "noReads"
  | "boundaryEstimated"
  | "intervalMismatch";

export interface VeeFlag {
  code: VeeFlagCode;
  atMs: number;
  detail: string;
}

export interface ValidatedInterval {
  startMs: number;
  hours: number;
  importKwh: number;
  exportKwh: number;
  quality: QualityOfReading;
}

export interface BoundaryRead {
  atMs: number;
  /** Register value at the boundary (kWh), interpolated between the reads either side. */
  registerKwh: number;
  quality: QualityOfReading;
}

export interface VeeResult {
  opening: BoundaryRead;
  closing: BoundaryRead;
  importKwh: number;
  exportKwh: number;
  intervals: ValidatedInterval[];
  flags: VeeFlag[];
  estimated: boolean;
  /** The synced reads used, oldest first (for the invoice). */
  readsUsed: number;
}

const HOUR_MS = 3_600_000;

interface Pair {
  fromMs: number;
  toMs: number;
  importKwh: number;
  exportKwh: number;
  quality: QualityOfReading;
  /** Register value (raw) at the pair's start and end, for boundary interpolation. */
  fromRaw: number;
  toRaw: number;
}

function channelDelta(
  previous: number,
  current: number,
  hours: number,
  options: VeeOptions,
  exchange: { oldFinal: number; newStart: number } | undefined,
): { kwh: number; kind: "ok" | "rollover" | "exchange" | "negative" } {
  if (exchange !== undefined) {
    return {
      kwh: Math.max(0, exchange.oldFinal - previous) + Math.max(0, current - exchange.newStart),
      kind: "exchange",
    };
  }
  const delta = current - previous;
  if (delta >= 0) return { kwh: delta, kind: "ok" };
  if (options.registerDigits !== undefined) {
    const wrapped = current + 10 ** options.registerDigits - previous;
    if (wrapped >= 0 && wrapped / Math.max(hours, 1e-9) <= (options.maxKw ?? 250))
      return { kwh: wrapped, kind: "rollover" };
  }
  return { kwh: 0, kind: "negative" };
}

export function validateReads(
  allReads: readonly RegisterRead[],
  period: BillingPeriod,
  calendar: BillingCalendar,
  options: VeeOptions = {},
): VeeResult {
  const flags: VeeFlag[] = [];
  const maxKw = options.maxKw ?? 250;
  const shortGapMs = options.shortGapMs ?? 3 * HOUR_MS;
  const unsynced = allReads.filter((read) => read.clock !== "synced");
  if (unsynced.length > 0) {
    flags.push({
      code: "unsynced",
      atMs: unsynced[0]?.tsMs ?? period.startMs,
      detail: `${unsynced.length} read(s) with an unsynchronised clock not used`,
    });
  }
  let reads = allReads.filter((read) => read.clock === "synced").sort((a, b) => a.tsMs - b.tsMs);

  // Spikes: an isolated read far above both neighbours is a misread.
  reads = reads.filter((read, index) => {
    const before = reads[index - 1];
    const after = reads[index + 1];
    if (before === undefined || after === undefined) return true;
    const hours = (read.tsMs - before.tsMs) / HOUR_MS;
    const rising = (read.importKwh - before.importKwh) / Math.max(hours, 1e-9);
    if (rising > maxKw && after.importKwh < read.importKwh && after.importKwh >= before.importKwh) {
      flags.push({
        code: "spike",
        atMs: read.tsMs,
        detail: `read ${read.importKwh} kWh implies ${rising.toFixed(1)} kW (> ${maxKw} kW) and the next read falls back: dropped`,
      });
      return false;
    }
    return true;
  });

  // The meter's read interval: as configured, else the median spacing of its reads (a gateway
  // polling every 30 minutes has no gaps at 30 minutes).
  const spacings = reads
    .slice(1)
    .map((read, index) => read.tsMs - (reads[index] as RegisterRead).tsMs)
    .sort((a, b) => a - b);
  const readIntervalMs = options.readIntervalMs ?? spacings[Math.floor(spacings.length / 2)] ?? 15 * 60_000;
  const pairs: Pair[] = [];
  for (let index = 1; index < reads.length; index++) {
    const from = reads[index - 1] as RegisterRead;
    const to = reads[index] as RegisterRead;
    const spanMs = to.tsMs - from.tsMs;
    if (spanMs <= 0) continue;
    const hours = spanMs / HOUR_MS;
    const exchange = options.exchanges?.find((item) => item.atMs > from.tsMs && item.atMs <= to.tsMs);
    const imported = channelDelta(
      from.importKwh,
      to.importKwh,
      hours,
      options,
      exchange && { oldFinal: exchange.oldFinalImportKwh, newStart: exchange.newStartImportKwh },
    );
    const exported = channelDelta(
      from.exportKwh ?? 0,
      to.exportKwh ?? 0,
      hours,
      options,
      exchange && { oldFinal: exchange.oldFinalExportKwh ?? 0, newStart: exchange.newStartExportKwh ?? 0 },
    );
    let quality: QualityOfReading = QUALITY.valid;
    const relevant = to.tsMs > period.startMs && from.tsMs < period.endMs;
    if (spanMs > readIntervalMs * 1.5) {
      quality = spanMs <= shortGapMs ? QUALITY.estimatedLinear : QUALITY.estimatedReferenceDay;
      if (relevant) {
        flags.push({
          code: "gap",
          atMs: from.tsMs,
          detail: `no read for ${(spanMs / 60_000).toFixed(0)} min: estimated ${quality === QUALITY.estimatedLinear ? "linearly" : "from like days"}`,
        });
      }
    }
    if (imported.kind === "negative") {
      quality = QUALITY.questionable;
      if (relevant) {
        flags.push({
          code: "negative",
          atMs: to.tsMs,
          detail: `register fell from ${from.importKwh} to ${to.importKwh} kWh: counted as zero`,
        });
      }
    } else if (imported.kind === "rollover" && relevant) {
      flags.push({
        code: "rollover",
        atMs: to.tsMs,
        detail: `register rolled over at 10^${options.registerDigits} kWh: ${from.importKwh} → ${to.importKwh}`,
      });
    } else if (imported.kind === "exchange" && relevant) {
      flags.push({
        code: "exchange",
        atMs: exchange?.atMs ?? to.tsMs,
        detail: "meter exchanged: old and new registers joined",
      });
    }
    if (imported.kwh / hours > maxKw && relevant) {
      quality = QUALITY.questionable;
      flags.push({
        code: "spike",
        atMs: to.tsMs,
        detail: `${(imported.kwh / hours).toFixed(1)} kW exceeds ${maxKw} kW`,
      });
    }
    pairs.push({
      fromMs: from.tsMs,
      toMs: to.tsMs,
      importKwh: imported.kwh,
      exportKwh: exported.kwh,
      quality,
      fromRaw: from.importKwh,
      toRaw: to.importKwh,
    });
  }

  const slots: { startMs: number; endMs: number }[] = [];
  for (let startMs = period.startMs; startMs < period.endMs; startMs += HOUR_MS) {
    slots.push({ startMs, endMs: Math.min(startMs + HOUR_MS, period.endMs) });
  }
  const intervals: ValidatedInterval[] = slots.map((slot) => ({
    startMs: slot.startMs,
    hours: (slot.endMs - slot.startMs) / HOUR_MS,
    importKwh: 0,
    exportKwh: 0,
    quality: QUALITY.valid,
  }));
  const slotIndex = (ms: number) => Math.floor((ms - period.startMs) / HOUR_MS);
  const weekendOf = (ms: number) => {
    const weekday = calendar.localTime(ms).weekday;
    return weekday === 0 || weekday === 6;
  };
  const worse = (a: QualityOfReading, b: QualityOfReading): QualityOfReading => {
    const rank = (q: QualityOfReading) =>
      q === QUALITY.valid ? 0 : q === QUALITY.estimatedLinear ? 1 : q === QUALITY.estimatedReferenceDay ? 2 : 3;
    return rank(a) >= rank(b) ? a : b;
  };

  // Like-day profile from the period's valid hours: mean kWh per (weekend?, local hour).
  const profileSum = new Map<string, { kwh: number; n: number }>();
  const likeKey = (ms: number) => `${weekendOf(ms) ? "we" : "wd"}:${calendar.localTime(ms).hour}`;

  const spread = (pair: Pair, weights: ((slot: { startMs: number; endMs: number }) => number) | null) => {
    const first = Math.max(0, slotIndex(Math.max(pair.fromMs, period.startMs)));
    const last = Math.min(slots.length - 1, slotIndex(Math.min(pair.toMs, period.endMs) - 1));
    const span = pair.toMs - pair.fromMs;
    // Weighted (like-day) spreading needs the weights over the whole pair, inside and outside the period.
    let totalWeight = 0;
    if (weights !== null) {
      for (let ms = Math.floor(pair.fromMs / HOUR_MS) * HOUR_MS; ms < pair.toMs; ms += HOUR_MS) {
        const overlap = Math.min(ms + HOUR_MS, pair.toMs) - Math.max(ms, pair.fromMs);
        totalWeight += weights({ startMs: ms, endMs: ms + HOUR_MS }) * (overlap / HOUR_MS);
      }
    }
    for (let index = first; index <= last; index++) {
      const slot = slots[index];
      const interval = intervals[index];
      if (slot === undefined || interval === undefined) continue;
      const overlap = Math.min(slot.endMs, pair.toMs) - Math.max(slot.startMs, pair.fromMs);
      if (overlap <= 0) continue;
      const share =
        weights !== null && totalWeight > 0 ? (weights(slot) * (overlap / HOUR_MS)) / totalWeight : overlap / span;
      interval.importKwh += pair.importKwh * share;
      interval.exportKwh += pair.exportKwh * share;
      interval.quality = worse(interval.quality, pair.quality);
    }
  };

  const boundaryValue = (atMs: number): { value: number; raw: number } | null => {
    // Continuous register (rollover/exchange/negative handled) relative to the first read.
    let cumulative = 0;
    for (const pair of pairs) {
      if (atMs >= pair.fromMs && atMs <= pair.toMs) {
        const fraction = pairFraction(pair, atMs);
        const raw =
          pair.toRaw >= pair.fromRaw
            ? pair.fromRaw + fraction * (pair.toRaw - pair.fromRaw)
            : pair.fromRaw + fraction * pair.importKwh;
        return { value: cumulative + fraction * pair.importKwh, raw };
      }
      cumulative += pair.importKwh;
    }
    return null;
  };

  /** How much of a pair's consumption lies before `atMs`: linear, or like-day weighted for long gaps. */
  const pairFraction = (pair: Pair, atMs: number): number => {
    const linear = (atMs - pair.fromMs) / (pair.toMs - pair.fromMs);
    if (pair.quality !== QUALITY.estimatedReferenceDay) return linear;
    let before = 0;
    let total = 0;
    for (let ms = Math.floor(pair.fromMs / HOUR_MS) * HOUR_MS; ms < pair.toMs; ms += HOUR_MS) {
      const weight = likeDayWeight({ startMs: ms });
      total += weight * ((Math.min(ms + HOUR_MS, pair.toMs) - Math.max(ms, pair.fromMs)) / HOUR_MS);
      before += weight * (Math.max(0, Math.min(ms + HOUR_MS, atMs) - Math.max(ms, pair.fromMs)) / HOUR_MS);
    }
    return total > 0 ? before / total : linear;
  };

  const relevantPairs = pairs.filter((pair) => pair.toMs > period.startMs && pair.fromMs < period.endMs);
  if (relevantPairs.length === 0 && reads.length === 0) {
    const perHour = options.fallbackKwhPerHour ?? 0;
    flags.push({
      code: "noReads",
      atMs: period.startMs,
      detail: `no synced read for the period: estimated at ${perHour} kWh per hour from history`,
    });
    for (const interval of intervals) {
      interval.importKwh = perHour * interval.hours;
      interval.quality = QUALITY.estimatedReferenceDay;
    }
    const total = intervals.reduce((sum, interval) => sum + interval.importKwh, 0);
    return {
      opening: { atMs: period.startMs, registerKwh: Number.NaN, quality: QUALITY.estimatedReferenceDay },
      closing: { atMs: period.endMs, registerKwh: Number.NaN, quality: QUALITY.estimatedReferenceDay },
      importKwh: total,
      exportKwh: 0,
      intervals,
      flags,
      estimated: true,
      readsUsed: 0,
    };
  }

  for (const pair of relevantPairs) {
    if (pair.quality === QUALITY.estimatedReferenceDay) continue;
    spread(pair, null);
  }
  for (const interval of intervals) {
    if (interval.quality !== QUALITY.valid) continue;
    const key = likeKey(interval.startMs);
    const entry = profileSum.get(key) ?? { kwh: 0, n: 0 };
    entry.kwh += interval.importKwh;
    entry.n += 1;
    profileSum.set(key, entry);
  }
  const likeDayWeight = (slot: { startMs: number }) => {
    const entry = profileSum.get(likeKey(slot.startMs));
    return entry === undefined || entry.n === 0 ? 0 : entry.kwh / entry.n;
  };
  for (const pair of relevantPairs) {
    if (pair.quality === QUALITY.estimatedReferenceDay) spread(pair, likeDayWeight);
  }

  // Boundaries without a read on one side: extrapolate at the average rate of the known span.
  const firstRead = reads[0] as RegisterRead;
  const lastRead = reads[reads.length - 1] as RegisterRead;
  const knownHours = Math.max((lastRead.tsMs - firstRead.tsMs) / HOUR_MS, 1e-9);
  const knownKwh = pairs.reduce((sum, pair) => sum + pair.importKwh, 0);
  const averageKw = pairs.length > 0 ? knownKwh / knownHours : (options.fallbackKwhPerHour ?? 0);
  const extrapolate = (fromMs: number, toMs: number) => {
    for (let index = 0; index < slots.length; index++) {
      const slot = slots[index];
      const interval = intervals[index];
      if (slot === undefined || interval === undefined) continue;
      const overlap = Math.min(slot.endMs, toMs) - Math.max(slot.startMs, fromMs);
      if (overlap <= 0) continue;
      interval.importKwh += (averageKw * overlap) / HOUR_MS;
      interval.quality = worse(interval.quality, QUALITY.estimatedReferenceDay);
    }
  };
  let openingValue = boundaryValue(period.startMs);
  let opening: BoundaryRead;
  if (openingValue === null || firstRead.tsMs > period.startMs) {
    const hoursMissing = (firstRead.tsMs - period.startMs) / HOUR_MS;
    extrapolate(period.startMs, Math.min(firstRead.tsMs, period.endMs));
    openingValue = { value: -averageKw * hoursMissing, raw: firstRead.importKwh - averageKw * hoursMissing };
    opening = { atMs: period.startMs, registerKwh: openingValue.raw, quality: QUALITY.estimatedReferenceDay };
    flags.push({
      code: "boundaryEstimated",
      atMs: period.startMs,
      detail: "no read before the period start: opening read estimated",
    });
  } else {
    opening = { atMs: period.startMs, registerKwh: openingValue.raw, quality: pairQualityAt(pairs, period.startMs) };
  }
  let closingValue = boundaryValue(period.endMs);
  let closing: BoundaryRead;
  if (closingValue === null || lastRead.tsMs < period.endMs) {
    const hoursMissing = (period.endMs - lastRead.tsMs) / HOUR_MS;
    extrapolate(Math.max(lastRead.tsMs, period.startMs), period.endMs);
    closingValue = { value: knownKwh + averageKw * hoursMissing, raw: lastRead.importKwh + averageKw * hoursMissing };
    closing = { atMs: period.endMs, registerKwh: closingValue.raw, quality: QUALITY.estimatedReferenceDay };
    flags.push({
      code: "boundaryEstimated",
      atMs: period.endMs,
      detail: "no read after the period end: closing read estimated",
    });
  } else {
    closing = { atMs: period.endMs, registerKwh: closingValue.raw, quality: pairQualityAt(pairs, period.endMs) };
  }

  const importKwh = intervals.reduce((sum, interval) => sum + interval.importKwh, 0);
  const exportKwh = intervals.reduce((sum, interval) => sum + interval.exportKwh, 0);
  const registerKwh = closingValue.value - openingValue.value;
  if (Math.abs(registerKwh - importKwh) > 1e-6 * Math.max(1, registerKwh)) {
    flags.push({
      code: "intervalMismatch",
      atMs: period.startMs,
      detail: `intervals sum to ${importKwh.toFixed(6)} kWh, registers differ by ${registerKwh.toFixed(6)} kWh`,
    });
  }
  if (
    options.intervalSumKwh !== undefined &&
    Math.abs(options.intervalSumKwh - registerKwh) > 0.001 * registerKwh + 0.001
  ) {
    flags.push({
      code: "intervalMismatch",
      atMs: period.startMs,
      detail: `stored intervals sum to ${options.intervalSumKwh.toFixed(3)} kWh, registers differ by ${registerKwh.toFixed(3)} kWh`,
    });
  }
  if (importKwh === 0) flags.push({ code: "zero", atMs: period.startMs, detail: "no consumption in the period" });
  const estimated =
    opening.quality !== QUALITY.valid ||
    closing.quality !== QUALITY.valid ||
    intervals.some(
      (interval) => interval.quality === QUALITY.estimatedLinear || interval.quality === QUALITY.estimatedReferenceDay,
    );
  return { opening, closing, importKwh, exportKwh, intervals, flags, estimated, readsUsed: reads.length };
}

function pairQualityAt(pairs: readonly Pair[], atMs: number): QualityOfReading {
  const pair = pairs.find((item) => atMs >= item.fromMs && atMs <= item.toMs);
  if (pair === undefined) return QUALITY.estimatedReferenceDay;
  // A boundary interpolated between two reads of a normal interval is a valid read.
  return pair.quality === QUALITY.questionable ? QUALITY.questionable : pair.quality;
}
