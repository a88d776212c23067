import { EdgemeterError } from "@edgemeter/shared";
import { ZoneCalendar } from "./calendar.js";

/**
 * Billing periods are calendar months in the meter's time zone: from local midnight on the
 * 1st to local midnight on the 1st of the next month, as UTC instants. The zone's DST rules
 * decide the length (a March in Berlin is 743 hours, an October 745; November in New York
 * 721), February has 29 days in leap years, and December runs into January of the next year.
 */
export interface BillingPeriod {
  /** "2026-10" */
  period: string;
  zone: string;
  year: number;
  month: number;
  startMs: number;
  endMs: number;
  days: number;
  hours: number;
}

const PERIOD = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** Parses "2026-10". @throws EdgemeterError config.period naming the bad value. */
export function parsePeriod(text: string): { year: number; month: number } {
  const match = PERIOD.exec(text);
  if (match === null) throw new EdgemeterError("config.period", `period "${text}": expected YYYY-MM, e.g. 2026-10`);
  return { year: Number(match[1]), month: Number(match[2]) };
}

export function formatPeriod(year: number, month: number): string {
  return `${year}-${String(month).padStart(2, "0")}`;
}

/** The next period ("2026-12" → "2027-01"). */
export function nextPeriod(period: string): string {
  const { year, month } = parsePeriod(period);
  return month === 12 ? formatPeriod(year + 1, 1) : formatPeriod(year, month + 1);
}

/** The period before ("2027-01" → "2026-12"). */
export function previousPeriod(period: string): string {
  const { year, month } = parsePeriod(period);
  return month === 1 ? formatPeriod(year - 1, 12) : formatPeriod(year, month - 1);
}

const calendars = new Map<string, ZoneCalendar>();

/** One calendar per zone for the process: its offset cache is then shared by every meter. */
export function calendarFor(zone: string): ZoneCalendar {
  let calendar = calendars.get(zone);
  if (calendar === undefined) {
    calendar = new ZoneCalendar(zone);
    calendars.set(zone, calendar);
  }
  return calendar;
}

export function billingPeriod(period: string, zone: string): BillingPeriod {
  const { year, month } = parsePeriod(period);
  const calendar = calendarFor(zone);
  const startMs = calendar.localMidnightUtcMs(year, month, 1);
  const endMs = calendar.localMidnightUtcMs(year, month + 1, 1);
  return {
    period,
    zone,
    year,
    month,
    startMs,
    endMs,
    days: new Date(Date.UTC(year, month, 0)).getUTCDate(),
    hours: (endMs - startMs) / 3_600_000,
  };
}
