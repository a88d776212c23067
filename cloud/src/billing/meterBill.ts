import type { BillingCalendar } from "./calendar.js";
import { billPeriod, type IntervalUse, type LineItem } from "./engine.js";
import type { MinorUnits } from "./money.js";
import type { BillingPeriod } from "./periods.js";
import type { UrdbTariff } from "./tariff.js";
import {
  type BoundaryRead,
  type RegisterRead,
  type VeeFlag,
  type VeeOptions,
  type VeeResult,
  validateReads,
} from "./vee.js";

/**
 * One meter's bill for one period: VEE on its reads, then the tariff engine on the validated
 * intervals. Pure. A tariff change or move-in/move-out inside the period is a list of
 * segments; each is billed on its own intervals with its fixed and minimum charges prorated
 * by the share of the period's days it covers.
 */
export interface TariffSegment {
  tariffId: string;
  tariff: UrdbTariff;
  /** Inclusive start, exclusive end (UTC ms); clipped to the period. */
  fromMs: number;
  toMs: number;
}

export interface MeterBillInput {
  meterId: string;
  period: BillingPeriod;
  calendar: BillingCalendar;
  segments: readonly TariffSegment[];
  reads: readonly RegisterRead[];
  vee?: VeeOptions;
}

export interface MeterBill {
  meterId: string;
  period: string;
  zone: string;
  currency: string;
  opening: BoundaryRead;
  closing: BoundaryRead;
  importKwh: number;
  exportKwh: number;
  /** kWh per TOU period of the (first) tariff, for the invoice. */
  importKwhByPeriod: number[];
  /** kWh per local day, for the invoice chart. */
  dailyKwh: number[];
  lines: (LineItem & { tariffId: string })[];
  energyMinor: MinorUnits;
  demandMinor: MinorUnits;
  fixedMinor: MinorUnits;
  minimumMinor: MinorUnits;
  exportCreditMinor: MinorUnits;
  taxesMinor: MinorUnits;
  totalMinor: MinorUnits;
  estimated: boolean;
  flags: VeeFlag[];
}

export function billMeter(input: MeterBillInput): MeterBill {
  const { period, calendar } = input;
  const vee: VeeResult = validateReads(input.reads, period, calendar, input.vee);
  const totals = { energy: 0, demand: 0, fixed: 0, minimum: 0, exportCredit: 0, taxes: 0, total: 0 };
  const lines: MeterBill["lines"] = [];
  let importKwhByPeriod: number[] = [];
  let currency = input.segments[0]?.tariff.currency ?? "USD";
  const servedIntervals: IntervalUse[] = [];
  for (const segment of input.segments) {
    const fromMs = Math.max(segment.fromMs, period.startMs);
    const toMs = Math.min(segment.toMs, period.endMs);
    if (toMs <= fromMs) continue;
    const uses: IntervalUse[] = vee.intervals
      .filter((interval) => interval.startMs >= fromMs && interval.startMs < toMs)
      .map((interval) => ({
        local: calendar.localTime(interval.startMs),
        hours: interval.hours,
        importKwh: interval.importKwh,
        exportKwh: interval.exportKwh,
        estimated: interval.quality === 8 || interval.quality === 9,
      }));
    servedIntervals.push(...uses);
    // Served days counted in local calendar days, so a 23- or 25-hour day is still one day.
    const servedDays = Number((localDayNumber(calendar, toMs) - localDayNumber(calendar, fromMs)).toFixed(4));
    const bill = billPeriod({
      tariff: segment.tariff,
      month: period.month,
      daysInMonth: period.days,
      servedDays,
      intervals: uses,
    });
    if (importKwhByPeriod.length === 0) importKwhByPeriod = bill.importKwhByPeriod;
    currency = segment.tariff.currency;
    for (const line of bill.lines) lines.push({ ...line, tariffId: segment.tariffId });
    totals.energy += bill.energyMinor;
    totals.demand += bill.demandMinor;
    totals.fixed += bill.fixedMinor;
    totals.minimum += bill.minimumMinor;
    totals.exportCredit += bill.exportCreditMinor;
    totals.taxes += bill.taxesMinor;
    totals.total += bill.totalMinor;
  }
  const dailyKwh = new Array<number>(period.days).fill(0);
  for (const use of servedIntervals) dailyKwh[use.local.day - 1] = (dailyKwh[use.local.day - 1] ?? 0) + use.importKwh;
  const importKwh = servedIntervals.reduce((sum, use) => sum + use.importKwh, 0);
  const exportKwh = servedIntervals.reduce((sum, use) => sum + use.exportKwh, 0);
  return {
    meterId: input.meterId,
    period: period.period,
    zone: period.zone,
    currency,
    opening: vee.opening,
    closing: vee.closing,
    importKwh,
    exportKwh,
    importKwhByPeriod,
    dailyKwh,
    lines,
    energyMinor: totals.energy,
    demandMinor: totals.demand,
    fixedMinor: totals.fixed,
    minimumMinor: totals.minimum,
    exportCreditMinor: totals.exportCredit,
    taxesMinor: totals.taxes,
    totalMinor: totals.total,
    estimated: vee.estimated || servedIntervals.some((use) => use.estimated),
    flags: vee.flags,
  };
}

/** Days since the epoch on the local wall clock (fractional within a day). */
function localDayNumber(calendar: BillingCalendar, utcMs: number): number {
  const local = calendar.localTime(utcMs);
  return (Date.UTC(local.year, local.month - 1, local.day, local.hour) + (utcMs % 3_600_000)) / 86_400_000;
}
