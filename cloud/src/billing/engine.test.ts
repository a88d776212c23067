import { describe, expect, it } from "vitest";
import { billPeriod, type IntervalUse } from "./engine.js";
import { roundHalfEven, toMinorUnits } from "./money.js";
import { parseUrdbTariff } from "./tariff.js";

const flat = (period: number) => Array.from({ length: 12 }, () => new Array<number>(24).fill(period));
/** A June weekday (Wednesday) hour. */
const at = (hour: number, day = 3): IntervalUse["local"] => ({ year: 2026, month: 6, day, hour, weekday: 3 });
const use = (hour: number, importKwh: number, exportKwh = 0, hours = 1): IntervalUse => ({
  local: at(hour),
  hours,
  importKwh,
  exportKwh,
  estimated: false,
});

describe("money", () => {
  it("rounds half-even after snapping binary noise", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, 0, -2, 2, 3]);
    expect(toMinorUnits(0.125)).toBe(12); // 12.5 cents → 12 (even)
    expect(toMinorUnits(0.135)).toBe(14); // 13.5 → 14; 0.135 × 100 = 13.500000000000002 snapped
    expect(toMinorUnits(0.1 + 0.2)).toBe(30);
    expect(toMinorUnits(1.005, 1000)).toBe(1005);
  });
});

describe("billPeriod", () => {
  it("kWh daily tiers scale with the days of the period", () => {
    const tariff = parseUrdbTariff(
      {
        energyratestructure: [[{ rate: 0.1, max: 10, unit: "kWh daily" }, { rate: 0.2 }]],
        energyweekdayschedule: flat(0),
        energyweekendschedule: flat(0),
      },
      "t",
    );
    const bill = billPeriod({ tariff, month: 6, daysInMonth: 30, intervals: [use(12, 350)] });
    // 300 kWh in tier 1 (10/day × 30 days), 50 in tier 2.
    expect(bill.lines.map((line) => [line.description, line.quantity, line.amountMinor])).toEqual([
      ["energy period 1 tier 1", 300, 3000],
      ["energy period 1 tier 2", 50, 1000],
    ]);
  });

  it("tiered TOU demand on the period peak, flat demand, fixed, export credit, minimum, taxes add up", () => {
    const tariff = parseUrdbTariff(
      {
        energyratestructure: [[{ rate: 0.1, sell: 0.04 }], [{ rate: 0.3, sell: 0.04 }]],
        energyweekdayschedule: flat(0).map((row) => row.map((_, h) => (h >= 17 && h < 21 ? 1 : 0))),
        energyweekendschedule: flat(0),
        demandratestructure: [[{ rate: 0 }], [{ rate: 5, max: 3 }, { rate: 8 }]],
        demandweekdayschedule: flat(0).map((row) => row.map((_, h) => (h >= 17 && h < 21 ? 1 : 0))),
        demandweekendschedule: flat(0),
        flatdemandstructure: [[{ rate: 1 }]],
        flatdemandmonths: new Array<number>(12).fill(0),
        fixedchargefirstmeter: 10,
        taxes: [
          { name: "VAT", percent: 19 },
          { name: "levy", perKwh: 0.0123 },
        ],
      },
      "t",
    );
    const bill = billPeriod({
      tariff,
      month: 6,
      daysInMonth: 30,
      // 15-minute interval of 1.25 kWh at 18:00 = 5 kW on-peak; 6 kW off-peak at 03:00.
      intervals: [use(18, 1.25, 0, 0.25), use(3, 6), ...Array.from({ length: 20 }, () => use(12, 5, 2))],
    });
    const byKind = (kind: string) => bill.lines.filter((line) => line.kind === kind);
    expect(byKind("demand").map((line) => [line.description, line.quantity, line.amountMinor])).toEqual([
      ["demand period 2 tier 1", 3, 1500],
      ["demand period 2 tier 2", 2, 1600],
      ["demand (monthly peak)", 6, 600],
    ]);
    expect(bill.energyMinor).toBe(Math.round(106 * 10 + 1.25 * 30)); // 1060 + 37.5 → section rounded once: 1098 (half-even)
    expect(bill.exportCreditMinor).toBe(-160);
    expect(bill.fixedMinor).toBe(1000);
    const subtotal = bill.energyMinor + bill.demandMinor + bill.fixedMinor + bill.exportCreditMinor;
    expect(byKind("tax").map((line) => line.amountMinor)).toEqual([
      toMinorUnits((subtotal / 100) * 0.19),
      toMinorUnits((107.25 - 40) * 0.0123),
    ]);
    expect(bill.totalMinor).toBe(bill.lines.reduce((sum, line) => sum + line.amountMinor, 0));
    expect(bill.minimumMinor).toBe(0);
  });

  it("a minimum charge tops up a small bill; prorated for part of a month", () => {
    const tariff = parseUrdbTariff(
      {
        energyratestructure: [[{ rate: 0.2 }]],
        energyweekdayschedule: flat(0),
        energyweekendschedule: flat(0),
        mincharge: 15,
      },
      "t",
    );
    const full = billPeriod({ tariff, month: 6, daysInMonth: 30, intervals: [use(1, 10)] });
    expect(full.lines.map((line) => [line.kind, line.amountMinor])).toEqual([
      ["energy", 200],
      ["minimum", 1300],
    ]);
    const half = billPeriod({ tariff, month: 6, daysInMonth: 30, servedDays: 15, intervals: [use(1, 10)] });
    expect(half.totalMinor).toBe(750);
  });
});
