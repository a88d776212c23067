import { describe, expect, it } from "vitest";
import { ChartHistory, MeterRing, STATUS_PAGE_HISTORY } from "./meterRing.js";

describe("MeterRing", () => {
  it("keeps the last window, one point per spacing, oldest first", () => {
    const ring = new MeterRing(["a", "b"], 10_000, 1_000);
    expect(ring.capacity).toBe(11);
    for (let t = 0; t <= 30_000; t += 500) ring.push(t, { a: t / 1000 });
    const { tsMs, series } = ring.read(30_000);
    // Points at whole seconds only (500 ms apart is closer than the spacing), within 10 s.
    expect(tsMs).toEqual([21_000, 22_000, 23_000, 24_000, 25_000, 26_000, 27_000, 28_000, 29_000, 30_000]);
    expect(series.a).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
    // A value not read is a gap, not a zero.
    expect(series.b).toEqual(Array(10).fill(null));
  });

  it("drops points older than the window when read later", () => {
    const ring = new MeterRing(["a"], 10_000, 1_000);
    ring.push(0, { a: 1 });
    ring.push(5_000, { a: 2 });
    expect(ring.read(12_000).series.a).toEqual([2]);
    expect(ring.read(20_000).tsMs).toEqual([]);
  });

  it("gives 32-bit values back as the decimals that were pushed", () => {
    const ring = new MeterRing(["v", "p", "f"], 10_000, 1_000);
    ring.push(1_000, { v: 230.1, p: -3_450.5, f: 50.01 });
    expect(ring.read(2_000).series).toEqual({ v: [230.1], p: [-3_450.5], f: [50.01] });
  });
});

describe("ChartHistory", () => {
  const shape = { windowMs: 60_000, recentWindowMs: 10_000, recentSpacingMs: 1_000, olderSpacingMs: 5_000 };

  it("keeps the recent window at full detail and the rest one point per older spacing", () => {
    const history = new ChartHistory(["a"], shape);
    for (let t = 0; t <= 100_000; t += 1_000) history.push(t, { a: t / 1_000 });
    const { tsMs, series } = history.read(100_000);
    // Older: every 5 s from 45 s (window 60 s back from 100 s, exclusive) up to the first recent
    // point (90 s is just outside the recent 10 s); recent: every second after it.
    const older = [45_000, 50_000, 55_000, 60_000, 65_000, 70_000, 75_000, 80_000, 85_000, 90_000];
    const recent = [91_000, 92_000, 93_000, 94_000, 95_000, 96_000, 97_000, 98_000, 99_000, 100_000];
    expect(tsMs).toEqual([...older, ...recent]);
    expect(series.a).toEqual([...older, ...recent].map((t) => t / 1_000));
  });

  it("is only the recent detail while the gateway is younger than the recent window", () => {
    const history = new ChartHistory(["a", "b"], shape);
    for (let t = 0; t <= 4_000; t += 1_000) history.push(t, { a: t });
    expect(history.read(4_000)).toEqual({
      tsMs: [0, 1_000, 2_000, 3_000, 4_000],
      series: { a: [0, 1_000, 2_000, 3_000, 4_000], b: [null, null, null, null, null] },
    });
  });

  it("still gives the older points after the recent ones went stale (a meter that stopped answering)", () => {
    const history = new ChartHistory(["a"], shape);
    for (let t = 0; t <= 20_000; t += 1_000) history.push(t, { a: 1 });
    // 30 s later: nothing recent, the older points within the minute are still there.
    expect(history.read(50_000).tsMs).toEqual([0, 5_000, 10_000, 15_000, 20_000]);
  });

  it("holds the status page's hour in 962 points instead of 3,601", () => {
    expect(new ChartHistory(["a"], STATUS_PAGE_HISTORY).capacity).toBe(601 + 361);
  });
});
