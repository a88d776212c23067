import { describe, expect, it } from "vitest";
import { billMeter, type TariffSegment } from "./meterBill.js";
import { billingPeriod, calendarFor, nextPeriod, previousPeriod } from "./periods.js";
import { parseUrdbTariff } from "./tariff.js";
import { QUALITY, type RegisterRead, validateReads } from "./vee.js";

const HOUR = 3_600_000;
const MIN = 60_000;
const flat = (period: number) => Array.from({ length: 12 }, () => new Array<number>(24).fill(period));
const tariff = parseUrdbTariff(
  {
    label: "test flat",
    currency: "EUR",
    energyratestructure: [[{ rate: 0.3 }]],
    energyweekdayschedule: flat(0),
    energyweekendschedule: flat(0),
    fixedchargefirstmeter: 12,
    fixedchargeunits: "$/month",
  },
  "test tariff",
);
const segment = (fromMs = 0, toMs = Number.MAX_SAFE_INTEGER): TariffSegment => ({
  tariffId: "flat",
  tariff,
  fromMs,
  toMs,
});

/** A register that grows at a rate varying by hour of day (kWh at instant ms). */
function register(ms: number): number {
  // 0.5 kW base plus 0.3 kW × (1 + sin): integral in closed form, so the truth is exact.
  const hours = ms / HOUR;
  return 1000 + 0.8 * hours - (0.3 * 24 * Math.cos((2 * Math.PI * hours) / 24)) / (2 * Math.PI);
}

/** Synced reads every `stepMs`, shifted by `phaseMs` off the quarter hours, over [fromMs, toMs]. */
function reads(fromMs: number, toMs: number, stepMs = 15 * MIN, phaseMs = 7 * MIN): RegisterRead[] {
  const out: RegisterRead[] = [];
  for (let ms = fromMs + phaseMs; ms <= toMs; ms += stepMs)
    out.push({ tsMs: ms, importKwh: register(ms), clock: "synced" });
  return out;
}

/** The register difference between two instants as linear interpolation between reads would see it. */
function interpolated(series: RegisterRead[], atMs: number): number {
  const after = series.findIndex((read) => read.tsMs >= atMs);
  const b = series[after] as RegisterRead;
  const a = series[after - 1] as RegisterRead;
  return a.importKwh + ((atMs - a.tsMs) / (b.tsMs - a.tsMs)) * (b.importKwh - a.importKwh);
}

describe("billing periods in the meter's time zone", () => {
  // Expected UTC boundaries written out by hand from the published DST rules (EU: last Sunday
  // of March/October at 01:00 UTC; US: second Sunday of March, first Sunday of November, 2 am local).
  const cases = [
    {
      zone: "Europe/Berlin",
      period: "2026-03",
      start: "2026-02-28T23:00:00Z",
      end: "2026-03-31T22:00:00Z",
      hours: 743,
    },
    {
      zone: "Europe/Berlin",
      period: "2026-10",
      start: "2026-09-30T22:00:00Z",
      end: "2026-10-31T23:00:00Z",
      hours: 745,
    },
    {
      zone: "America/New_York",
      period: "2026-03",
      start: "2026-03-01T05:00:00Z",
      end: "2026-04-01T04:00:00Z",
      hours: 743,
    },
    {
      zone: "America/New_York",
      period: "2026-11",
      start: "2026-11-01T04:00:00Z",
      end: "2026-12-01T05:00:00Z",
      hours: 721,
    },
    {
      zone: "Europe/Berlin",
      period: "2026-12",
      start: "2026-11-30T23:00:00Z",
      end: "2026-12-31T23:00:00Z",
      hours: 744,
    },
    {
      zone: "Europe/Berlin",
      period: "2028-02",
      start: "2028-01-31T23:00:00Z",
      end: "2028-02-29T23:00:00Z",
      hours: 696,
    },
  ];
  for (const c of cases) {
    it(`${c.zone} ${c.period}: ${c.hours} hours; consumption = register difference at the local boundaries`, () => {
      const period = billingPeriod(c.period, c.zone);
      expect(new Date(period.startMs).toISOString()).toBe(new Date(c.start).toISOString());
      expect(new Date(period.endMs).toISOString()).toBe(new Date(c.end).toISOString());
      expect(period.hours).toBe(c.hours);
      const series = reads(period.startMs - 2 * HOUR, period.endMs + 2 * HOUR);
      const bill = billMeter({
        meterId: "m1",
        period,
        calendar: calendarFor(c.zone),
        segments: [segment()],
        reads: series,
      });
      const expected = interpolated(series, period.endMs) - interpolated(series, period.startMs);
      expect(bill.importKwh).toBeCloseTo(expected, 6);
      expect(bill.closing.registerKwh - bill.opening.registerKwh).toBeCloseTo(expected, 6);
      // …and within interpolation error of the true register difference.
      expect(Math.abs(bill.importKwh - (register(period.endMs) - register(period.startMs)))).toBeLessThan(0.01);
      expect(bill.estimated).toBe(false);
      expect(bill.flags).toEqual([]);
      expect(bill.dailyKwh).toHaveLength(period.days);
      expect(bill.dailyKwh.reduce((a, b) => a + b, 0)).toBeCloseTo(expected, 6);
      // Energy line = kWh × rate, rounded once; fixed 12.00; lines add up to the total.
      expect(bill.energyMinor).toBe(Math.round(expected * 0.3 * 100));
      expect(bill.fixedMinor).toBe(1200);
      expect(bill.lines.reduce((sum, line) => sum + line.amountMinor, 0)).toBe(bill.totalMinor);
    });
  }

  it("December runs into January of the next year; February 2028 has 29 days", () => {
    expect(nextPeriod("2026-12")).toBe("2027-01");
    expect(previousPeriod("2027-01")).toBe("2026-12");
    expect(billingPeriod("2026-12", "Europe/Berlin").endMs).toBe(billingPeriod("2027-01", "Europe/Berlin").startMs);
    expect(billingPeriod("2028-02", "America/New_York").days).toBe(29);
    expect(billingPeriod("2027-02", "America/New_York").days).toBe(28);
    expect(() => billingPeriod("2026-13", "Europe/Berlin")).toThrow('period "2026-13": expected YYYY-MM');
    expect(() => billingPeriod("2026-10", "Mars/Olympus")).toThrow('unknown IANA time zone "Mars/Olympus"');
  });
});

describe("VEE", () => {
  const period = billingPeriod("2026-10", "Europe/Berlin");
  const calendar = calendarFor("Europe/Berlin");
  const base = () => reads(period.startMs - HOUR, period.endMs + HOUR);
  const truth = () => interpolated(base(), period.endMs) - interpolated(base(), period.startMs);

  it("rollover at the register's digits counts the wrapped difference", () => {
    // Shift the register so it passes 99,999.x → 0.x in mid-month (5 integer digits).
    const shift = 100_000 - register(period.startMs + 10 * 24 * HOUR);
    const series = base().map((read) => ({ ...read, importKwh: (read.importKwh + shift) % 100_000 }));
    const result = validateReads(series, period, calendar, { registerDigits: 5 });
    expect(result.flags.map((flag) => flag.code)).toEqual(["rollover"]);
    expect(result.importKwh).toBeCloseTo(truth(), 6);
    expect(result.estimated).toBe(false);
    // Without the digits it is a register decrease: flagged negative, questionable, counted zero.
    const unknown = validateReads(series, period, calendar);
    expect(unknown.flags.map((flag) => flag.code)).toEqual(["negative"]);
    expect(unknown.intervals.some((interval) => interval.quality === QUALITY.questionable)).toBe(true);
    expect(unknown.importKwh).toBeLessThan(truth());
  });

  it("meter exchange mid-month joins the old and the new register", () => {
    const atMs = period.startMs + 12 * 24 * HOUR + 30 * MIN;
    const old = base().filter((read) => read.tsMs < atMs);
    const fresh = base()
      .filter((read) => read.tsMs >= atMs)
      .map((read) => ({ ...read, importKwh: read.importKwh - register(atMs) + 3 }));
    const result = validateReads([...old, ...fresh], period, calendar, {
      exchanges: [{ atMs, oldFinalImportKwh: register(atMs), newStartImportKwh: 3 }],
    });
    expect(result.flags.map((flag) => flag.code)).toEqual(["exchange"]);
    expect(result.importKwh).toBeCloseTo(truth(), 3);
    const bill = billMeter({
      meterId: "m",
      period,
      calendar,
      segments: [segment()],
      reads: [...old, ...fresh],
      vee: { exchanges: [{ atMs, oldFinalImportKwh: register(atMs), newStartImportKwh: 3 }] },
    });
    expect(bill.importKwh).toBeCloseTo(truth(), 3);
  });

  it("short gaps are interpolated linearly (9), long ones from like days (8); the bill says estimated", () => {
    const shortFrom = period.startMs + 3 * 24 * HOUR;
    const longFrom = period.startMs + 20 * 24 * HOUR;
    const series = base().filter(
      (read) =>
        !(read.tsMs > shortFrom && read.tsMs < shortFrom + 2 * HOUR) &&
        !(read.tsMs > longFrom && read.tsMs < longFrom + 30 * HOUR),
    );
    const result = validateReads(series, period, calendar);
    expect(result.flags.map((flag) => flag.code)).toEqual(["gap", "gap"]);
    const qualities = new Set(result.intervals.map((interval) => interval.quality));
    expect(qualities).toEqual(new Set([QUALITY.valid, QUALITY.estimatedLinear, QUALITY.estimatedReferenceDay]));
    // The register difference across each gap is kept: the month total equals the boundary difference.
    expect(result.importKwh).toBeCloseTo(truth(), 6);
    // Like-day shape: the estimated hours follow the daily curve (not flat), so they beat a straight line.
    const longHours = result.intervals.filter((interval) => interval.quality === QUALITY.estimatedReferenceDay);
    const trueHour = (ms: number) => register(ms + HOUR) - register(ms);
    const errorLikeDay = longHours.reduce((sum, i) => sum + Math.abs(i.importKwh - trueHour(i.startMs)), 0);
    const flatKwh = longHours.reduce((sum, i) => sum + i.importKwh, 0) / longHours.length;
    const errorFlat = longHours.reduce((sum, i) => sum + Math.abs(flatKwh - trueHour(i.startMs)), 0);
    expect(errorLikeDay).toBeLessThan(errorFlat / 3);
    const bill = billMeter({ meterId: "m", period, calendar, segments: [segment()], reads: series });
    expect(bill.estimated).toBe(true);
  });

  it("a spike read is dropped; a zero-consumption month is flagged, not estimated", () => {
    const series = base();
    const index = 500;
    const spiked = series.map((read, i) => (i === index ? { ...read, importKwh: read.importKwh + 900 } : read));
    const result = validateReads(spiked, period, calendar);
    // The dropped read leaves a 30-minute hole, interpolated linearly like any short gap.
    expect(result.flags.map((flag) => flag.code)).toEqual(["spike", "gap"]);
    expect(result.importKwh).toBeCloseTo(truth(), 1);
    const idle = base().map((read) => ({ ...read, importKwh: 42 }));
    const zero = validateReads(idle, period, calendar);
    expect(zero.flags.map((flag) => flag.code)).toEqual(["zero"]);
    expect(zero.estimated).toBe(false);
  });

  it("a month with no reads at all is estimated from history and flagged", () => {
    const bill = billMeter({
      meterId: "m",
      period,
      calendar,
      segments: [segment()],
      reads: [],
      vee: { fallbackKwhPerHour: 0.5 },
    });
    expect(bill.flags.map((flag) => flag.code)).toEqual(["noReads"]);
    expect(bill.estimated).toBe(true);
    expect(bill.importKwh).toBeCloseTo(0.5 * 745, 6);
    expect(bill.energyMinor).toBe(Math.round(0.5 * 745 * 0.3 * 100));
  });

  it("a read with an unsynchronised clock never decides the boundary", () => {
    const series = base().filter((read) => Math.abs(read.tsMs - period.startMs) > 20 * MIN);
    // Its clock says just after midnight but the register shows a value from hours later.
    series.push({ tsMs: period.startMs + MIN, importKwh: register(period.startMs + 6 * HOUR), clock: "unsynced" });
    const result = validateReads(series, period, calendar);
    expect(result.flags.map((flag) => flag.code)).toEqual(["unsynced", "gap"]);
    expect(result.opening.registerKwh).toBeCloseTo(register(period.startMs), 2);
    expect(result.importKwh).toBeCloseTo(register(period.endMs) - register(period.startMs), 1);
  });

  it("move-in mid-month prorates the fixed charge and bills only the served days", () => {
    const moveIn = calendar.localMidnightUtcMs(2026, 10, 11);
    const bill = billMeter({ meterId: "m", period, calendar, segments: [segment(moveIn)], reads: base() });
    // 21 of 31 days (the DST hour does not change the day count): 12 × 21/31 = 8.129… → 8.13
    expect(bill.fixedMinor).toBe(813);
    expect(bill.importKwh).toBeCloseTo(interpolated(base(), period.endMs) - interpolated(base(), moveIn), 6);
    expect(bill.lines.find((line) => line.kind === "fixed")?.description).toBe("fixed charge (21 of 31 days)");
  });

  it("a tariff change mid-period bills each part under its tariff, fixed charges prorated", () => {
    const change = calendar.localMidnightUtcMs(2026, 10, 16);
    const dearer = parseUrdbTariff(
      { ...tariff, energyratestructure: [[{ rate: 0.4 }]], fixedchargefirstmeter: 31 },
      "dearer",
    );
    const bill = billMeter({
      meterId: "m",
      period,
      calendar,
      segments: [
        { tariffId: "flat", tariff, fromMs: 0, toMs: change },
        { tariffId: "dearer", tariff: dearer, fromMs: change, toMs: Number.MAX_SAFE_INTEGER },
      ],
      reads: base(),
    });
    const first = interpolated(base(), change) - interpolated(base(), period.startMs);
    const second = interpolated(base(), period.endMs) - interpolated(base(), change);
    const fixed = bill.lines.filter((line) => line.kind === "fixed").map((line) => line.amountMinor);
    expect(fixed[1]).toBe(1600); // 31 × 16/31
    expect(fixed[0]).toBe(581); // 12 × 15/31 = 5.806 → 5.81
    expect(bill.energyMinor).toBe(Math.round(first * 30) + Math.round(second * 40));
  });
});
