import { loadProfile, planReads, type SimulatorHandle, startSimulator } from "@edgemeter/hardware";
import { socatBinary, startPtyPair } from "@edgemeter/hardware/testing";
import { isMeasurementName } from "@edgemeter/shared";
import { requireService, waitFor } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import type { NewReading } from "../outbox/outbox.js";
import { systemClock } from "../time/clock.js";
import { BusScheduler, type PolledMeter } from "./busScheduler.js";
import { ModbusSerialPort } from "./modbusSerialPort.js";

const PROFILE = loadProfile("sdm630");
const PLAN = planReads(PROFILE);
const HAVE_SOCAT = requireService("socat", socatBinary() !== null, "apt-get install socat");

function expectClose(actual: number, expected: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(expected)));
}

describe.runIf(HAVE_SOCAT)("Modbus RTU over a socat pty pair: gateway adapter ↔ simulator", () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function line(
    meters: Parameters<typeof startSimulator>[0]["meters"],
    rtu: { baudRate?: number; emulateLineTiming?: boolean; turnaroundMs?: number } = {},
  ): Promise<{ sim: SimulatorHandle; masterPath: string }> {
    const pty = await startPtyPair();
    cleanups.push(() => pty.close());
    const sim = await startSimulator({
      tickMs: 0,
      meters,
      rtu: { path: pty.slavePath, baudRate: 38_400, parity: "even", emulateLineTiming: false, ...rtu },
    });
    cleanups.push(() => sim.close());
    return { sim, masterPath: pty.masterPath };
  }

  function rtuPort(path: string, timeoutMs = 300) {
    const port = new ModbusSerialPort({
      path,
      baudRate: 38_400,
      parity: "even",
      dataBits: 8,
      stopBits: 1,
      timeoutMs,
      interFrameGapMs: 0,
      logger: silentLogger(),
    });
    cleanups.push(() => port.close());
    return port;
  }

  it("reads two meters on one line, values equal to the simulator's, at the emulated line speed", async () => {
    const { sim, masterPath } = await line(
      [
        { unitId: 1, profile: "sdm630" },
        { unitId: 7, profile: "sdm630", seed: 99, startEnergyKwh: 12_345.6 },
      ],
      { baudRate: 38_400, emulateLineTiming: true, turnaroundMs: 2 },
    );
    const port = rtuPort(masterPath);
    for (const unitId of [1, 7]) {
      for (const request of PLAN) {
        const words = await port.readRegisters(unitId, request.fn, request.address, request.count);
        expect(words).toHaveLength(request.count);
      }
    }
    const readings: NewReading[] = [];
    const scheduler = new BusScheduler({
      busId: "rtu",
      port,
      clock: systemClock,
      meters: [
        { id: "meter-1", unitId: 1, pollIntervalMs: 200, requests: PLAN },
        { id: "meter-7", unitId: 7, pollIntervalMs: 200, requests: PLAN },
      ],
      onReading: (r) => readings.push(r),
      logger: silentLogger(),
    });
    scheduler.start();
    cleanups.push(() => scheduler.stop());
    await waitFor(() => (readings.length >= 4 ? true : undefined), "four readings");
    await scheduler.stop();
    for (const reading of readings) {
      expect(reading.errors).toBeUndefined();
      const snapshot = sim.snapshot(reading.meterId === "meter-1" ? 1 : 7).values;
      for (const [name, value] of Object.entries(reading.values)) {
        if (!isMeasurementName(name)) throw new Error(name);
        expectClose(value, snapshot[name]);
      }
    }
  });

  it("opens the serial port exclusively: a second opener gets modbus.connection", async () => {
    const { masterPath } = await line([{ unitId: 1, profile: "sdm630" }]);
    const first = rtuPort(masterPath);
    expect(await first.readRegisters(1, "input", 0, 2)).toHaveLength(2);
    const second = rtuPort(masterPath);
    const refused = await second.readRegisters(1, "input", 0, 2).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "modbus.connection", retryable: true });
    expect(await first.readRegisters(1, "input", 0, 2)).toHaveLength(2);
  });

  it("maps injected faults: CRC error, silence, exception, garbage, slow answers", async () => {
    const { sim, masterPath } = await line([{ unitId: 3, profile: "sdm630" }]);
    const port = rtuPort(masterPath, 250);
    const read = () => port.readRegisters(3, "input", 0, 2).catch((e: unknown) => e);
    sim.setFault(3, { kind: "crcError" });
    expect(await read()).toMatchObject({ code: "modbus.crc", retryable: true });
    sim.setFault(3, { kind: "noAnswer" });
    expect(await read()).toMatchObject({ code: "modbus.timeout", retryable: true });
    sim.setFault(3, { kind: "exception", exceptionCode: 6 });
    expect(await read()).toMatchObject({ code: "modbus.exception", retryable: true, context: { exceptionCode: 6 } });
    sim.setFault(3, { kind: "garbage" });
    const garbage = await read();
    expect(["modbus.crc", "modbus.timeout"]).toContain((garbage as { code?: string }).code);
    sim.setFault(3, { kind: "slow", extraDelayMs: 400 });
    expect(await read()).toMatchObject({ code: "modbus.timeout" });
    sim.setFault(3, { kind: "slow", extraDelayMs: 50 });
    expect(await read()).toHaveLength(2);
    sim.setFault(3, undefined);
    // After all that the line is still in step: the next answer is the right one.
    await new Promise((r) => setTimeout(r, 500));
    const words = await port.readRegisters(3, "input", 0x48, 2);
    expect(words).toHaveLength(2);
  });

  it("a merged read refused with Illegal Data Address is split and the meter's values still arrive", async () => {
    const { sim, masterPath } = await line([{ unitId: 5, profile: "sdm630", refuseGapReads: true }]);
    const port = rtuPort(masterPath);
    const readings: NewReading[] = [];
    const scheduler = new BusScheduler({
      busId: "rtu",
      port,
      clock: systemClock,
      meters: [{ id: "strict", unitId: 5, pollIntervalMs: 100, requests: PLAN }],
      onReading: (r) => readings.push(r),
      logger: silentLogger(),
    });
    scheduler.start();
    cleanups.push(() => scheduler.stop());
    await waitFor(() => (readings.length >= 2 ? true : undefined), "two readings");
    await scheduler.stop();
    const all = PROFILE.registers.map((r) => r.measurement).sort();
    for (const reading of readings) {
      expect(reading.errors).toBeUndefined();
      expect(Object.keys(reading.values).sort()).toEqual(all);
    }
    expect(scheduler.stats().splits).toBeGreaterThan(0);
    expect(scheduler.meterStats()[0]?.requests).toBeGreaterThan(PLAN.length);
    const snapshot = sim.snapshot(5).values;
    expectClose(readings[0]?.values.importEnergyKwh ?? Number.NaN, snapshot.importEnergyKwh);
  });

  it("32 meters on one bus: one dead, one answering CRC errors, 30 healthy ones keep their poll interval", async () => {
    const healthyUnits = Array.from({ length: 30 }, (_, i) => i + 1);
    const { sim, masterPath } = await line([
      ...healthyUnits.map((unitId) => ({ unitId, profile: "sdm630" })),
      { unitId: 31, profile: "sdm630" },
      { unitId: 32, profile: "sdm630" },
    ]);
    sim.setFault(31, { kind: "noAnswer" });
    sim.setFault(32, { kind: "crcError" });
    const port = rtuPort(masterPath, 150);
    const intervalMs = 2_000;
    const meters: PolledMeter[] = [...healthyUnits, 31, 32].map((unitId) => ({
      id: `m${unitId}`,
      unitId,
      pollIntervalMs: intervalMs,
      requests: PLAN,
    }));
    const readings: NewReading[] = [];
    const scheduler = new BusScheduler({
      busId: "rs485",
      port,
      clock: systemClock,
      meters,
      onReading: (r) => readings.push(r),
      logger: silentLogger(),
    });
    scheduler.start();
    cleanups.push(() => scheduler.stop());
    const polls = 5;
    await waitFor(
      () => (scheduler.meterStats().every((m) => m.polls >= polls) ? true : undefined),
      `${polls} polls of every meter`,
      60_000,
    );
    await scheduler.stop();
    const stats = scheduler.meterStats();
    for (const unitId of healthyUnits) {
      const meter = stats.find((m) => m.meterId === `m${unitId}`);
      // Every slot of its grid was polled (none skipped) and every poll gave a full reading.
      expect(meter?.skippedPolls, `m${unitId}`).toBe(0);
      expect(meter?.readings, `m${unitId}`).toBe(meter?.polls);
      const own = readings.filter((r) => r.meterId === `m${unitId}`);
      expect(own.every((r) => r.errors === undefined)).toBe(true);
    }
    expect(readings.some((r) => r.meterId === "m31" || r.meterId === "m32")).toBe(false);
    expect(stats.find((m) => m.meterId === "m31")?.state).toBe("offline");
    expect(stats.find((m) => m.meterId === "m32")?.state).toBe("offline");
  }, 90_000);
});
