import { type MeasurementName, MeterEvent } from "@edgemeter/shared";
import { describe, expect, it } from "vitest";
import type { NewReading } from "../outbox/outbox.js";
import { ANSI_C84_1_120V_60HZ, EN50160_230V_50HZ, FaultDetector, type FaultThresholds } from "./faultDetector.js";

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

function reading(second: number, values: Partial<Record<MeasurementName, number>>, meterId = "m1"): NewReading {
  return {
    meterId,
    ts: new Date(T0 + second * 1_000).toISOString(),
    clock: "synced",
    values: { voltageL1V: 230, voltageL2V: 230, voltageL3V: 230, frequencyHz: 50, ...values },
  };
}

/** Runs a per-second series of L1 voltages (or other values) and returns every event. */
function run(series: Array<Partial<Record<MeasurementName, number>>>, thresholds: FaultThresholds = EN50160_230V_50HZ) {
  const detector = new FaultDetector(() => thresholds);
  const events = series.flatMap((values, second) => detector.observe(reading(second, values)));
  for (const event of events) MeterEvent.parse(event); // every event is a valid wire event
  return { events, detector };
}

const l1 = (volts: number[]) => volts.map((v) => ({ voltageL1V: v }));

describe("FaultDetector (EN 50160, 230 V / 50 Hz)", () => {
  it("raises nothing for a normal supply", () => {
    expect(run(l1([230, 229, 231, 225, 236, 230])).events).toEqual([]);
  });

  it("does NOT raise an event for a one-sample spike (sag, swell, interruption, frequency)", () => {
    expect(run(l1([230, 150, 230, 230])).events).toEqual([]);
    expect(run(l1([230, 280, 230, 230])).events).toEqual([]);
    expect(run(l1([230, 0, 230, 230])).events).toEqual([]);
    expect(run([{}, { frequencyHz: 51.2 }, {}, {}]).events).toEqual([]);
  });

  it("reports a sag with start, end, its lowest value and its duration", () => {
    const { events } = run(l1([230, 200, 190, 195, 230, 230]));
    expect(events).toHaveLength(2);
    const [start, end] = events;
    expect(start).toMatchObject({
      kind: "voltageSag",
      state: "start",
      phase: "L1",
      ts: new Date(T0 + 1_000).toISOString(),
      threshold: 207,
    });
    expect(end).toMatchObject({
      kind: "voltageSag",
      state: "end",
      phase: "L1",
      value: 190,
      ts: new Date(T0 + 4_000).toISOString(),
      durationMs: 3_000,
      eventId: start?.eventId,
    });
  });

  it("ends a sag only once the voltage is back above threshold + hysteresis", () => {
    // 207 V is the 90 % threshold; 211.6 V the end with 2 % hysteresis. 208 and 210 keep it going.
    const { events } = run(l1([200, 200, 208, 210, 212, 230]));
    expect(events.map((e) => `${e.state}@${e.ts.slice(17, 19)}`)).toEqual(["start@00", "end@04"]);
  });

  it("reports a swell with its highest value", () => {
    const { events } = run(l1([230, 260, 270, 255, 230]));
    expect(events.map((e) => [e.kind, e.state, e.value])).toEqual([
      ["voltageSwell", "start", 270],
      ["voltageSwell", "end", 270],
    ]);
    expect(events[1]?.durationMs).toBe(3_000);
  });

  it("reports an interruption (< 5 %) and not a sag for a clean drop to zero", () => {
    const { events } = run(l1([230, 0, 0, 0, 230]));
    expect(events.map((e) => [e.kind, e.state, e.value, e.durationMs])).toEqual([
      ["voltageInterruption", "start", 0, null],
      ["voltageInterruption", "end", 0, 3_000],
    ]);
  });

  it("reports frequency deviation both ways with the farthest value", () => {
    const low = run([{}, { frequencyHz: 49.4 }, { frequencyHz: 49.2 }, { frequencyHz: 49.48 }, {}]).events;
    expect(low.map((e) => [e.kind, e.state, e.value, e.threshold])).toEqual([
      ["frequencyDeviation", "start", 49.2, 49.5],
      ["frequencyDeviation", "end", 49.2, 49.5],
    ]);
    const high = run([{ frequencyHz: 50.6 }, { frequencyHz: 50.7 }, {}]).events;
    expect(high.map((e) => [e.state, e.value])).toEqual([
      ["start", 50.7],
      ["end", 50.7],
    ]);
  });

  it("keeps phases apart", () => {
    const { events } = run([{}, { voltageL2V: 180 }, { voltageL2V: 180, voltageL3V: 260 }, { voltageL3V: 260 }, {}]);
    expect(events.map((e) => `${e.kind}/${e.phase}/${e.state}`)).toEqual([
      "voltageSag/L2/start",
      "voltageSag/L2/end",
      "voltageSwell/L3/start",
      "voltageSwell/L3/end",
    ]);
  });

  it("respects minDurationMs: 0 raises on the first sample, 3000 needs four samples", () => {
    expect(run(l1([230, 150, 230]), { ...EN50160_230V_50HZ, minDurationMs: 0 }).events).toHaveLength(2);
    const strict = { ...EN50160_230V_50HZ, minDurationMs: 3_000 };
    expect(run(l1([230, 150, 150, 150, 230]), strict).events).toEqual([]);
    expect(run(l1([230, 150, 150, 150, 150, 230]), strict).events).toHaveLength(2);
  });

  it("uses the ANSI C84.1 set for 120 V / 60 Hz", () => {
    // Range B lower limit 110 V: 112 V is fine, 105 V a sag; 59.4 Hz is a deviation at 60 Hz.
    const series = [
      { voltageL1V: 120, frequencyHz: 60 },
      { voltageL1V: 112, frequencyHz: 60 },
      { voltageL1V: 105, frequencyHz: 59.4 },
      { voltageL1V: 105, frequencyHz: 59.4 },
      { voltageL1V: 120, frequencyHz: 60 },
    ].map((v) => ({ voltageL2V: 120, voltageL3V: 120, ...v }));
    const { events } = run(series, ANSI_C84_1_120V_60HZ);
    expect(events.map((e) => `${e.kind}/${e.state}`)).toEqual([
      "voltageSag/start",
      "frequencyDeviation/start",
      "voltageSag/end",
      "frequencyDeviation/end",
    ]);
  });

  it("reports an energy register going backwards once, as an instant event", () => {
    const { events } = run([
      { importEnergyKwh: 100 },
      { importEnergyKwh: 100.5 },
      { importEnergyKwh: 0.1 },
      { importEnergyKwh: 0.2 },
    ]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      kind: "energyRegisterBackwards",
      state: "instant",
      value: 0.1,
      threshold: 100.5,
    });
  });

  it("reports a silent meter offline after offlineAfterMs and back on its next reading", () => {
    const detector = new FaultDetector(() => EN50160_230V_50HZ);
    detector.register("m1", T0);
    expect(detector.tick(T0 + 9_000)).toEqual([]);
    const offline = detector.tick(T0 + 10_000);
    expect(offline).toMatchObject([{ kind: "meterOffline", state: "start", meterId: "m1" }]);
    expect(detector.tick(T0 + 20_000)).toEqual([]); // reported once
    expect(detector.active()).toMatchObject([{ kind: "meterOffline" }]);
    const back = detector.observe(reading(30, {}));
    expect(back).toMatchObject([{ kind: "meterBack", state: "end", durationMs: 30_000 }]);
    expect(back[0]?.eventId).toBe(offline[0]?.eventId);
    expect(detector.tick(T0 + 35_000)).toEqual([]);
  });

  it("gives the same fault the same id after a restart (the cloud keeps one)", () => {
    const a = run(l1([230, 180, 180, 230])).events;
    const b = run(l1([230, 180, 180, 230])).events;
    expect(a.map((e) => e.eventId)).toEqual(b.map((e) => e.eventId));
  });
});
