import { EdgemeterError } from "@edgemeter/shared";
import { type BillingCalendar, SamCalendar, ZoneCalendar } from "./calendar.js";
import { billPeriod, type IntervalUse, type PeriodBill } from "./engine.js";
import { toMajorUnits } from "./money.js";
import type { UrdbTariff } from "./tariff.js";

/**
 * Tariff what-if (`edgemeter-cloud tariff bill`): bills a year of hourly kWh under a tariff,
 * month by month, the way a utility compares tariffs and the way the engine is checked
 * against SAM's published results.
 */

const HOUR_MS = 3_600_000;

/**
 * Parses a one-column CSV of hourly kWh (an optional non-numeric header line, blank lines
 * ignored). `where` names the file.
 * @throws EdgemeterError config.csv naming the file and line of each bad value (all of them).
 */
export function parseHourlyCsv(text: string, where: string): number[] {
  const values: number[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const cell = (raw.split(",")[0] ?? "").trim();
    if (cell === "") return;
    const value = Number(cell);
    if (Number.isFinite(value) && value >= 0) {
      values.push(value);
    } else if (!(index === 0 && Number.isNaN(value))) {
      problems.push(`${where}: line ${index + 1}: "${cell}" is not a non-negative kWh number`);
    }
  });
  if (problems.length > 0) {
    throw new EdgemeterError("config.csv", problems.slice(0, 20).join("\n"), { context: { count: problems.length } });
  }
  return values;
}

export type WhatIfCalendar = { kind: "sam" } | { kind: "zone"; zone: string; year: number };

export interface WhatIfMonth {
  month: number;
  kwh: number;
  energy: number;
  demand: number;
  fixed: number;
  minimum: number;
  exportCredit: number;
  taxes: number;
  total: number;
  /** Energy charge before rounding, major units. */
  energyExact: number;
}

export interface WhatIfResult {
  currency: string;
  calendar: string;
  months: WhatIfMonth[];
  /** Sum of the monthly (rounded) totals. */
  total: number;
  /** Sum of the exact (unrounded) energy charges: SAM's "annual energy charge". */
  energyExact: number;
}

/** Bills hourly kWh starting at local midnight of 1 January; hour i is `start + i` hours. */
export function billHourlyYear(
  tariff: UrdbTariff,
  hourlyKwh: readonly number[],
  calendarSpec: WhatIfCalendar,
): WhatIfResult {
  let calendar: BillingCalendar;
  let startMs: number;
  let daysInMonth: (month: number) => number;
  if (calendarSpec.kind === "sam") {
    calendar = new SamCalendar();
    startMs = 0;
    daysInMonth = (month) => SamCalendar.DAYS_IN_MONTH[month - 1] ?? 30;
  } else {
    const zone = new ZoneCalendar(calendarSpec.zone);
    calendar = zone;
    startMs = zone.localMidnightUtcMs(calendarSpec.year, 1, 1);
    daysInMonth = (month) => new Date(Date.UTC(calendarSpec.year, month, 0)).getUTCDate();
  }
  const byMonth = new Map<number, IntervalUse[]>();
  hourlyKwh.forEach((kwh, index) => {
    const local = calendar.localTime(startMs + index * HOUR_MS);
    let list = byMonth.get(local.month);
    if (list === undefined) {
      list = [];
      byMonth.set(local.month, list);
    }
    list.push({ local, hours: 1, importKwh: kwh, exportKwh: 0, estimated: false });
  });
  const minor = tariff.currencyMinorUnits;
  const months = [...byMonth.entries()]
    .sort(([a], [b]) => a - b)
    .map(([month, intervals]) => {
      const bill: PeriodBill = billPeriod({ tariff, month, daysInMonth: daysInMonth(month), intervals });
      return {
        month,
        kwh: Number(bill.importKwh.toFixed(6)),
        energy: toMajorUnits(bill.energyMinor, minor),
        demand: toMajorUnits(bill.demandMinor, minor),
        fixed: toMajorUnits(bill.fixedMinor, minor),
        minimum: toMajorUnits(bill.minimumMinor, minor),
        exportCredit: toMajorUnits(bill.exportCreditMinor, minor),
        taxes: toMajorUnits(bill.taxesMinor, minor),
        total: toMajorUnits(bill.totalMinor, minor),
        energyExact: bill.energyExact,
        totalMinor: bill.totalMinor,
      };
    });
  const totalMinor = months.reduce((sum, month) => sum + month.totalMinor, 0);
  return {
    currency: tariff.currency,
    calendar: calendarSpec.kind === "sam" ? "sam" : `${calendarSpec.zone} ${calendarSpec.year}`,
    months: months.map(({ totalMinor: _omit, ...month }) => month),
    total: toMajorUnits(totalMinor, minor),
    energyExact: months.reduce((sum, month) => sum + month.energyExact, 0),
  };
}
