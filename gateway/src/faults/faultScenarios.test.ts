/**
 * Fault scenarios end to end through the real Modbus path: the simulator plays EN 50160
 * events (hardware/src/simulator/scenarios.ts) on an SDM630 served over Modbus TCP, the bus
 * scheduler polls it every (simulated) second through modbus-serial, and the detector must
 * turn exactly these scenarios into exactly the expected events. Time is driven by hand on
 * both sides (simulator clock, gateway FakeClock), so the test is exact, not timed.
 */
import { loadProfile, type PowerQualityScenario, planReads, startSimulator } from "@edgemeter/hardware";
import { MeterEvent } from "@edgemeter/shared";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import { BusScheduler } from "../modbus/busScheduler.js";
import { ModbusSerialPort } from "../modbus/modbusSerialPort.js";
import type { NewReading } from "../outbox/outbox.js";
import { FakeClock } from "../time/fakeClock.js";
import { EN50160_230V_50HZ, FaultDetector } from "./faultDetector.js";

const T0 = Date.UTC(2026, 4, 1, 12, 0, 0);
const s = (seconds: number) => T0 + seconds * 1_000;

describe("fault scenarios from the simulator over Modbus TCP", () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function play(scenarios: PowerQualityScenario[], seconds: number) {
    let simMs = T0;
    const sim = await startSimulator({
      port: 0,
      host: "127.0.0.1",
      tickMs: 0,
      clock: () => simMs,
      meters: [{ unitId: 1, profile: "sdm630", seed: 42 }],
    });
    cleanups.push(() => sim.close());
    sim.setScenarios(1, scenarios);
    const port = new ModbusSerialPort({
      host: "127.0.0.1",
      port: sim.port,
      timeoutMs: 2_000,
      interFrameGapMs: 0,
      logger: silentLogger(),
    });
    cleanups.push(() => port.close());
    const clock = new FakeClock(T0);
    const meter = { id: "meter-1", unitId: 1, pollIntervalMs: 1_000, requests: planReads(loadProfile("sdm630")) };
    const readings: NewReading[] = [];
    const scheduler = new BusScheduler({
      busId: "bus1",
      port,
      meters: [meter],
      clock,
      onReading: (r) => readings.push(r),
      logger: silentLogger(),
    });
    const detector = new FaultDetector(() => EN50160_230V_50HZ);
    const events: MeterEvent[] = [];
    for (let second = 0; second <= seconds; second++) {
      simMs = s(second);
      sim.tick();
      const reading = await scheduler.poll(meter);
      if (reading === null) throw new Error(`no reading at ${second} s`);
      events.push(...detector.observe(reading).map((e) => MeterEvent.parse(e)));
      await clock.advance(1_000);
    }
    return { events, readings };
  }

  const summary = (events: MeterEvent[]) =>
    events.map((e) => `${e.kind}/${e.phase ?? "-"}/${e.state}@${(Date.parse(e.ts) - T0) / 1_000}s`);

  it("a normal supply gives no events (the simulator's noise stays inside EN 50160)", async () => {
    expect((await play([], 20)).events).toEqual([]);
  });

  it("a 70 % sag on L1 for 5 s: one start and one end with the lowest voltage and the duration", async () => {
    const { events } = await play(
      [{ kind: "sag", startMs: s(5), durationMs: 5_000, residualPct: 70, phases: ["L1"] }],
      15,
    );
    expect(summary(events)).toEqual(["voltageSag/L1/start@5s", "voltageSag/L1/end@10s"]);
    const end = events[1];
    expect(end?.durationMs).toBe(5_000);
    expect(end?.value).toBeGreaterThan(0.7 * 230 * 0.97);
    expect(end?.value).toBeLessThan(0.7 * 230 * 1.03);
  });

  it("a 115 % swell on L2 and L3 for 4 s", async () => {
    const { events } = await play(
      [{ kind: "swell", startMs: s(3), durationMs: 4_000, levelPct: 115, phases: ["L2", "L3"] }],
      10,
    );
    expect(summary(events).sort()).toEqual(
      [
        "voltageSwell/L2/start@3s",
        "voltageSwell/L2/end@7s",
        "voltageSwell/L3/start@3s",
        "voltageSwell/L3/end@7s",
      ].sort(),
    );
  });

  it("an interruption of 3 s: one interruption per phase, no sag, no frequency event", async () => {
    const { events } = await play([{ kind: "interruption", startMs: s(4), durationMs: 3_000 }], 10);
    expect(summary(events).sort()).toEqual(
      ["L1", "L2", "L3"]
        .flatMap((p) => [`voltageInterruption/${p}/start@4s`, `voltageInterruption/${p}/end@7s`])
        .sort(),
    );
    expect(events.filter((e) => e.state === "end").every((e) => e.value === 0 && e.durationMs === 3_000)).toBe(true);
  });

  it("a frequency drift of +3 Hz/min for 20 s crosses 50.5 Hz after ~10 s and ends when it stops", async () => {
    const { events } = await play(
      [{ kind: "frequencyDrift", startMs: s(2), durationMs: 20_000, driftHzPerMin: 3 }],
      30,
    );
    expect(events.map((e) => `${e.kind}/${e.state}`)).toEqual(["frequencyDeviation/start", "frequencyDeviation/end"]);
    const [start, end] = events;
    // 3 Hz/min = 0.05 Hz/s: 50.5 Hz is passed around 10 s into the drift (noise moves it a second or so).
    expect((Date.parse(start?.ts ?? "") - T0) / 1_000).toBeGreaterThanOrEqual(11);
    expect((Date.parse(start?.ts ?? "") - T0) / 1_000).toBeLessThanOrEqual(14);
    expect((Date.parse(end?.ts ?? "") - T0) / 1_000).toBe(22);
    expect(end?.value).toBeGreaterThan(50.9);
  });

  it("a one-sample spike (a 50 % sag for 500 ms, seen by one poll) raises NO event", async () => {
    const { events, readings } = await play(
      [{ kind: "sag", startMs: s(5) - 200, durationMs: 500, residualPct: 50, phases: ["L1"] }],
      10,
    );
    // The spike was really read: one reading at half voltage.
    expect(readings.filter((r) => (r.values.voltageL1V ?? 230) < 150)).toHaveLength(1);
    expect(events).toEqual([]);
  });
});
