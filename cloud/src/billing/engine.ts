import type { LocalTime } from "./calendar.js";
import { type MinorUnits, toMinorUnits } from "./money.js";
import type { UrdbTariff } from "./tariff.js";

/**
 * The pure bill calculation: one tariff, one billing period (a calendar month in the meter's
 * zone, or part of it), the period's interval consumption. No I/O, no clock.
 *
 * Conventions (documented because tariffs leave them open):
 * - Energy tiers apply per TOU period to that period's kWh in the billing period; a
 *   "kWh daily" limit is multiplied by the days in the billing period (URDB's definition).
 * - Demand is the highest average kW of one interval (kWh / interval hours) in each demand
 *   period of the month; tiers apply to that peak kW.
 * - Fixed charge: $/month × served days / days in month, or $/day × served days (move-in,
 *   move-out and tariff changes are prorated this way).
 * - Minimum charge true-up: when energy + demand + fixed − export credit is below the
 *   (prorated) minimum, a "minimum" line brings it up to it.
 * - Export credit (net metering): exported kWh × the period's first-tier `sell` rate, or the
 *   retail rate when `usenetmetering` is true and no `sell` is given.
 * - Taxes: `percent` of the subtotal after minimum (in tariff order, not compounding), or
 *   `perKwh` × net imported kWh.
 * - Rounding: see money.ts (each charge section rounded once, half-even; its lines share the
 *   rounded amount by largest remainder, so lines add up to sections and sections to totals).
 */

/** One interval of consumption, already validated (VEE). */
export interface IntervalUse {
  local: LocalTime;
  /** Interval length in hours (1 for hourly, 0.25 for 15-minute). */
  hours: number;
  importKwh: number;
  exportKwh: number;
  /** True when the value was estimated (ESPI QualityOfReading 8 or 9). */
  estimated: boolean;
}

export type LineKind = "energy" | "demand" | "fixed" | "minimum" | "exportCredit" | "tax";

export interface LineItem {
  kind: LineKind;
  description: string;
  /** 0-based TOU period, for energy/demand/export lines. */
  period?: number;
  /** 0-based tier within the period. */
  tier?: number;
  quantity: number;
  unit: "kWh" | "kW" | "month" | "day" | "%" | "currency";
  /** Price per unit in major units ($/kWh, $/kW, $/month …). */
  rate: number;
  /** Exact amount before rounding, major units. */
  exactAmount: number;
  amountMinor: MinorUnits;
}

export interface PeriodBillInput {
  tariff: UrdbTariff;
  /** Local month (1–12) whose schedule rows apply (used when the interval list is empty). */
  month: number;
  daysInMonth: number;
  /** Days of the month this meter was served under this tariff (proration); defaults to all. */
  servedDays?: number;
  intervals: readonly IntervalUse[];
  /**
   * Consumption already aggregated per TOU period (by SQL over the hourly rollups, for bulk
   * runs); added to what `intervals` contribute.
   */
  aggregates?: PeriodAggregates;
}

export interface PeriodAggregates {
  importKwhByPeriod: readonly number[];
  exportKwhByPeriod: readonly number[];
  /** Highest kW (interval kWh / interval hours) per demand period. */
  peakKwByDemandPeriod: readonly number[];
  /** Highest kW of the month regardless of period (flat demand). */
  peakKw: number;
  estimated: boolean;
}

export interface PeriodBill {
  lines: LineItem[];
  energyMinor: MinorUnits;
  demandMinor: MinorUnits;
  fixedMinor: MinorUnits;
  minimumMinor: MinorUnits;
  exportCreditMinor: MinorUnits;
  taxesMinor: MinorUnits;
  totalMinor: MinorUnits;
  /** Exact energy charge before rounding (major units): how SAM reports, for comparison. */
  energyExact: number;
  importKwh: number;
  exportKwh: number;
  importKwhByPeriod: number[];
  peakKwByDemandPeriod: number[];
  estimated: boolean;
}

function isWeekend(local: LocalTime): boolean {
  return local.weekday === 0 || local.weekday === 6;
}

function scheduledPeriod(weekday: number[][] | undefined, weekend: number[][] | undefined, local: LocalTime): number {
  const rows = isWeekend(local) ? weekend : weekday;
  return rows?.[local.month - 1]?.[local.hour] ?? 0;
}

/** Splits `quantity` over tiers with upper limits `max × scale`; returns [tier, amount] pairs. */
function splitTiers(
  tiers: readonly { max?: number | undefined }[],
  quantity: number,
  scale: (tierIndex: number) => number,
): [number, number][] {
  const parts: [number, number][] = [];
  let lower = 0;
  for (let index = 0; index < tiers.length; index++) {
    const max = tiers[index]?.max;
    const upper = max === undefined || index === tiers.length - 1 ? Number.POSITIVE_INFINITY : max * scale(index);
    const inTier = Math.max(0, Math.min(quantity, upper) - lower);
    if (inTier > 0 || (index === 0 && quantity === 0)) parts.push([index, inTier]);
    lower = upper;
    if (quantity <= upper) break;
  }
  return parts;
}

/**
 * Rounds a section's exact sum once (half-even) and shares it among its lines by the largest
 * remainder method (Hamilton): each line gets its exact amount floored to the minor unit, then
 * the cents still missing go one each to the lines with the largest fractional remainders.
 * Every line is within one minor unit of its exact amount, and the lines add up to the section.
 */
export function allocateSection(lines: LineItem[], minorPerMajor: number): void {
  if (lines.length === 0) return;
  const target = toMinorUnits(
    lines.reduce((total, item) => total + item.exactAmount, 0),
    minorPerMajor,
  );
  const scaled = lines.map((item) => Number((item.exactAmount * minorPerMajor).toFixed(6)));
  const floors = scaled.map(Math.floor);
  let missing = target - floors.reduce((total, value) => total + value, 0);
  const order = scaled.map((value, index) => ({ index, remainder: value - Math.floor(value) }));
  order.sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  lines.forEach((item, index) => {
    item.amountMinor = floors[index] ?? 0;
  });
  for (let k = 0; missing > 0 && lines.length > 0; k = (k + 1) % lines.length, missing--) {
    const line = lines[order[k]?.index ?? 0];
    if (line !== undefined) line.amountMinor += 1;
  }
}

export function billPeriod(input: PeriodBillInput): PeriodBill {
  const { tariff } = input;
  const minor = tariff.currencyMinorUnits;
  const servedDays = input.servedDays ?? input.daysInMonth;
  const share = input.daysInMonth === 0 ? 0 : servedDays / input.daysInMonth;
  const energyPeriods = tariff.energyratestructure?.length ?? 0;
  const demandPeriods = tariff.demandratestructure?.length ?? 0;
  const importByPeriod = new Array<number>(energyPeriods).fill(0);
  const exportByPeriod = new Array<number>(energyPeriods).fill(0);
  const peakByDemandPeriod = new Array<number>(demandPeriods).fill(0);
  let flatPeak = 0;
  let importKwh = 0;
  let exportKwh = 0;
  let estimated = false;
  for (const use of input.intervals) {
    if (use.estimated) estimated = true;
    importKwh += use.importKwh;
    exportKwh += use.exportKwh;
    if (energyPeriods > 0) {
      const period = scheduledPeriod(tariff.energyweekdayschedule, tariff.energyweekendschedule, use.local);
      importByPeriod[period] = (importByPeriod[period] ?? 0) + use.importKwh;
      exportByPeriod[period] = (exportByPeriod[period] ?? 0) + use.exportKwh;
    }
    const kw = use.hours > 0 ? use.importKwh / use.hours : 0;
    if (kw > flatPeak) flatPeak = kw;
    if (demandPeriods > 0) {
      const period = scheduledPeriod(tariff.demandweekdayschedule, tariff.demandweekendschedule, use.local);
      if (kw > (peakByDemandPeriod[period] ?? 0)) peakByDemandPeriod[period] = kw;
    }
  }

  const aggregates = input.aggregates;
  if (aggregates !== undefined) {
    if (aggregates.estimated) estimated = true;
    aggregates.importKwhByPeriod.forEach((kwh, period) => {
      importByPeriod[period] = (importByPeriod[period] ?? 0) + kwh;
      importKwh += kwh;
    });
    aggregates.exportKwhByPeriod.forEach((kwh, period) => {
      exportByPeriod[period] = (exportByPeriod[period] ?? 0) + kwh;
      exportKwh += kwh;
    });
    aggregates.peakKwByDemandPeriod.forEach((kw, period) => {
      if (kw > (peakByDemandPeriod[period] ?? 0)) peakByDemandPeriod[period] = kw;
    });
    if (aggregates.peakKw > flatPeak) flatPeak = aggregates.peakKw;
  }

  const lines: LineItem[] = [];
  const line = (item: Omit<LineItem, "amountMinor">) => {
    lines.push({ ...item, amountMinor: 0 });
  };

  let energyExact = 0;
  tariff.energyratestructure?.forEach((tiers, period) => {
    const kwh = importByPeriod[period] ?? 0;
    const scale = (index: number) => (tiers[index]?.unit?.endsWith("daily") ? input.daysInMonth : 1);
    for (const [tier, kwhInTier] of splitTiers(tiers, kwh, scale)) {
      const spec = tiers[tier];
      const rate = (spec?.rate ?? 0) + (spec?.adj ?? 0);
      const exactAmount = kwhInTier * rate;
      energyExact += exactAmount;
      line({
        kind: "energy",
        description: `energy period ${period + 1}${tiers.length > 1 ? ` tier ${tier + 1}` : ""}`,
        period,
        tier,
        quantity: kwhInTier,
        unit: "kWh",
        rate,
        exactAmount,
      });
    }
  });

  const demandLines = (structure: UrdbTariff["demandratestructure"], period: number, peakKw: number, label: string) => {
    const tiers = structure?.[period];
    if (tiers === undefined) return;
    for (const [tier, kwInTier] of splitTiers(tiers, peakKw, () => 1)) {
      const spec = tiers[tier];
      const rate = (spec?.rate ?? 0) + (spec?.adj ?? 0);
      if (rate === 0) continue;
      line({
        kind: "demand",
        description: `${label}${tiers.length > 1 ? ` tier ${tier + 1}` : ""}`,
        period,
        tier,
        quantity: kwInTier,
        unit: "kW",
        rate,
        exactAmount: kwInTier * rate,
      });
    }
  };
  peakByDemandPeriod.forEach((peakKw, period) => {
    demandLines(tariff.demandratestructure, period, peakKw, `demand period ${period + 1}`);
  });
  const flatPeriod = tariff.flatdemandmonths?.[input.month - 1];
  if (flatPeriod !== undefined) demandLines(tariff.flatdemandstructure, flatPeriod, flatPeak, "demand (monthly peak)");

  if (tariff.fixedchargefirstmeter !== 0) {
    const perDay = tariff.fixedchargeunits === "$/day";
    line({
      kind: "fixed",
      description: share < 1 ? `fixed charge (${servedDays} of ${input.daysInMonth} days)` : "fixed charge",
      quantity: perDay ? servedDays : share,
      unit: perDay ? "day" : "month",
      rate: tariff.fixedchargefirstmeter,
      exactAmount: tariff.fixedchargefirstmeter * (perDay ? servedDays : share),
    });
  }

  tariff.energyratestructure?.forEach((tiers, period) => {
    const kwh = exportByPeriod[period] ?? 0;
    if (kwh <= 0) return;
    const first = tiers[0];
    const rate = first?.sell ?? (tariff.usenetmetering === true ? (first?.rate ?? 0) + (first?.adj ?? 0) : 0);
    if (rate === 0) return;
    line({
      kind: "exportCredit",
      description: `export credit period ${period + 1}`,
      period,
      quantity: kwh,
      unit: "kWh",
      rate: -rate,
      exactAmount: -kwh * rate,
    });
  });

  for (const kind of ["energy", "demand", "fixed", "exportCredit"] as const) {
    allocateSection(
      lines.filter((item) => item.kind === kind),
      minor,
    );
  }
  const sum = (kind: LineKind) => lines.reduce((total, item) => total + (item.kind === kind ? item.amountMinor : 0), 0);
  const beforeMinimum = sum("energy") + sum("demand") + sum("fixed") + sum("exportCredit");
  if (tariff.mincharge > 0) {
    const minimumExact =
      tariff.minchargeunits === "$/day"
        ? tariff.mincharge * servedDays
        : tariff.minchargeunits === "$/year"
          ? (tariff.mincharge / 12) * share
          : tariff.mincharge * share;
    const minimumMinor = toMinorUnits(minimumExact, minor);
    if (beforeMinimum < minimumMinor) {
      lines.push({
        kind: "minimum",
        description: "minimum charge true-up",
        quantity: 1,
        unit: "currency",
        rate: minimumExact,
        exactAmount: (minimumMinor - beforeMinimum) / minor,
        amountMinor: minimumMinor - beforeMinimum,
      });
    }
  }
  const taxBase = beforeMinimum + sum("minimum");
  const netKwh = Math.max(0, importKwh - exportKwh);
  for (const tax of tariff.taxes) {
    if ("percent" in tax) {
      line({
        kind: "tax",
        description: `${tax.name} ${tax.percent}%`,
        quantity: taxBase / minor,
        unit: "%",
        rate: tax.percent,
        exactAmount: ((taxBase / minor) * tax.percent) / 100,
      });
    } else {
      line({
        kind: "tax",
        description: tax.name,
        quantity: netKwh,
        unit: "kWh",
        rate: tax.perKwh,
        exactAmount: netKwh * tax.perKwh,
      });
    }
  }

  for (const item of lines) {
    // Each tax is its own section of one line.
    if (item.kind === "tax") item.amountMinor = toMinorUnits(item.exactAmount, minor);
  }

  const result = {
    lines,
    energyMinor: sum("energy"),
    demandMinor: sum("demand"),
    fixedMinor: sum("fixed"),
    minimumMinor: sum("minimum"),
    exportCreditMinor: sum("exportCredit"),
    taxesMinor: sum("tax"),
    totalMinor: lines.reduce((total, item) => total + item.amountMinor, 0),
    energyExact,
    importKwh,
    exportKwh,
    importKwhByPeriod: importByPeriod,
    peakKwByDemandPeriod: peakByDemandPeriod,
    estimated,
  };
  return result;
}
