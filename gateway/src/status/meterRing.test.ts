import { describe, expect, it } from "vitest";
import { MeterRing } from "./meterRing.js";

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
