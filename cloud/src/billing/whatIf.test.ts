import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { requireService } from "@edgemeter/shared/testing";
import { describe, expect, it } from "vitest";
import { parseUrdbTariff } from "./tariff.js";
import { billHourlyYear, parseHourlyCsv } from "./whatIf.js";

/** `<repo>/../shared/data`: the published reference data, which CI also has. */
const SHARED_DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const TARIFF = `${SHARED_DATA}nrel-sam-residential-tou-tariff.urdb.json`;
const LOAD = `${SHARED_DATA}nrel-sam-residential-load-8760.csv`;

describe("tariff what-if against NREL SAM's published result", () => {
  const available = requireService("shared data", existsSync(TARIFF) && existsSync(LOAD), `expected ${SHARED_DATA}`);

  it.skipIf(!available)("reproduces the residential TOU energy charges month by month, to the cent", () => {
    const record = JSON.parse(readFileSync(TARIFF, "utf8"));
    const tariff = parseUrdbTariff(record, TARIFF);
    const load = parseHourlyCsv(readFileSync(LOAD, "utf8"), LOAD);
    expect(load).toHaveLength(8760);
    const result = billHourlyYear(tariff, load, { kind: "sam" });
    expect(result.months.map((month) => month.month)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(result.months.map((month) => month.energy)).toEqual(record.expected.monthlyEnergyCharge);
    // SAM's annual figure is the unrounded sum: 771.776.
    expect(result.energyExact).toBeCloseTo(record.expected.annualEnergyCharge, 3);
    // Rounding each month to the cent first (our rule) gives 771.76, as the data file notes.
    expect(result.total).toBe(771.76);
    expect(result.months.reduce((sum, month) => sum + Math.round(month.total * 100), 0)).toBe(77_176);
    expect(result.months.every((month) => month.demand === 0 && month.fixed === 0 && month.taxes === 0)).toBe(true);
  });
});

describe("parseHourlyCsv", () => {
  it("accepts a header and blank lines, names file and line of every bad value", () => {
    expect(parseHourlyCsv("kwh\n1.5\n\n2\n", "a.csv")).toEqual([1.5, 2]);
    expect(() => parseHourlyCsv("1\nx\n-2\n", "b.csv")).toThrow(
      'b.csv: line 2: "x" is not a non-negative kWh number\nb.csv: line 3: "-2" is not a non-negative kWh number',
    );
  });
});

describe("parseUrdbTariff", () => {
  const schedule = (period: number) => Array.from({ length: 12 }, () => new Array<number>(24).fill(period));
  it("imports a URDB API envelope as is and keeps unknown fields", () => {
    const tariff = parseUrdbTariff(
      {
        items: [
          {
            label: "5cd1a3f05457a3e54e2c4a3d",
            uri: "https://apps.openei.org/IURDB/rate/view/5cd1a3f05457a3e54e2c4a3d",
            energyratestructure: [[{ rate: 0.1, max: 10, unit: "kWh daily" }, { rate: 0.2 }]],
            energyweekdayschedule: schedule(0),
            energyweekendschedule: schedule(0),
          },
        ],
      },
      "rate.json",
    );
    expect(tariff.currency).toBe("USD");
    expect(tariff.uri).toContain("openei.org");
  });
  it("rejects schedules that point at missing periods and non-rising tiers, with path", () => {
    expect(() =>
      parseUrdbTariff(
        {
          energyratestructure: [[{ rate: 0.1, max: 10 }, { rate: 0.2, max: 5 }, { rate: 0.3 }]],
          energyweekdayschedule: schedule(1),
          energyweekendschedule: schedule(0),
        },
        "bad.json",
      ),
    ).toThrow(
      /bad\.json: energyweekdayschedule\.0\.0: period 1 does not exist[\s\S]*energyratestructure\.0\.1\.max: tier limits must rise/,
    );
  });
});

describe("tariff what-if in a real time zone", () => {
  it("splits 8,760 local hours of 2026 in Berlin into months of 743 (March) and 745 (October) hours", () => {
    const schedule = Array.from({ length: 12 }, () => new Array<number>(24).fill(0));
    const tariff = parseUrdbTariff(
      { energyratestructure: [[{ rate: 0.1 }]], energyweekdayschedule: schedule, energyweekendschedule: schedule },
      "flat",
    );
    const result = billHourlyYear(tariff, new Array<number>(8760).fill(1), {
      kind: "zone",
      zone: "Europe/Berlin",
      year: 2026,
    });
    const hours = result.months.map((month) => month.kwh);
    expect(hours).toEqual([744, 672, 743, 720, 744, 720, 744, 744, 720, 745, 720, 744]);
    expect(result.months[2]?.energy).toBe(74.3);
    expect(result.total).toBe(876);
  });
});
