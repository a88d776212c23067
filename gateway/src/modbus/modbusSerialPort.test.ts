import { loadProfile, planReads, startSimulator } from "@edgemeter/hardware";
import { EdgemeterError, isMeasurementName } from "@edgemeter/shared";
import { freePort, waitFor } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import type { NewReading } from "../outbox/outbox.js";
import { systemClock } from "../time/clock.js";
import { BusScheduler } from "./busScheduler.js";
import { ModbusSerialPort } from "./modbusSerialPort.js";

const PROFILE = loadProfile("sdm630");
const PLAN = planReads(PROFILE);

function expectClose(actual: number, expected: number): void {
  // Values travel as float32 on the wire: about 7 significant digits survive.
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(expected)));
}

describe("ModbusSerialPort + BusScheduler against the meter simulator over real TCP", () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  async function simulator(port = 0) {
    // tickMs 0: the state stays put, so every poll must reproduce the snapshot exactly.
    const sim = await startSimulator({
      port,
      tickMs: 0,
      meters: [
        { unitId: 1, profile: "sdm630" },
        { unitId: 7, profile: "sdm630", seed: 99, startEnergyKwh: 12_345.6 },
      ],
    });
    cleanups.push(() => sim.close());
    return sim;
  }
  function modbusPort(port: number, timeoutMs = 300) {
    const modbus = new ModbusSerialPort({
      host: "127.0.0.1",
      port,
      timeoutMs,
      interFrameGapMs: 0,
      logger: silentLogger(),
    });
    cleanups.push(() => modbus.close());
    return modbus;
  }

  it("polls two meters on one connection; every reading equals the simulator's snapshot", async () => {
    const sim = await simulator();
    const port = modbusPort(sim.port);
    const readings: NewReading[] = [];
    const scheduler = new BusScheduler({
      busId: "bus1",
      port,
      clock: systemClock,
      meters: [
        { id: "meter-1", unitId: 1, pollIntervalMs: 100, requests: PLAN },
        { id: "meter-7", unitId: 7, pollIntervalMs: 100, requests: PLAN },
      ],
      onReading: (reading) => readings.push(reading),
      logger: silentLogger(),
    });
    scheduler.start();
    cleanups.push(() => scheduler.stop());
    await waitFor(
      () =>
        ["meter-1", "meter-7"].every((id) => readings.filter((r) => r.meterId === id).length >= 3) ? true : undefined,
      "three readings per meter",
    );
    await scheduler.stop();

    const profileMeasurements = [...new Set(PROFILE.registers.map((r) => r.measurement))].sort();
    for (const reading of readings) {
      const unitId = reading.meterId === "meter-1" ? 1 : 7;
      const snapshot = sim.snapshot(unitId).values;
      expect(reading.errors).toBeUndefined();
      expect(Object.keys(reading.values).sort()).toEqual(profileMeasurements);
      for (const [name, value] of Object.entries(reading.values)) {
        if (!isMeasurementName(name)) throw new Error(`unexpected measurement ${name}`);
        expectClose(value, snapshot[name]);
      }
    }
    // Different meters really were told apart (unit id is connection state in modbus-serial).
    const one = readings.find((r) => r.meterId === "meter-1")?.values.importEnergyKwh;
    const seven = readings.find((r) => r.meterId === "meter-7")?.values.importEnergyKwh;
    expect(seven).toBeGreaterThan(12_000);
    expect(one).toBeLessThan(12_000);
  });

  it("keeps concurrent callers' reads apart (FIFO: one request in flight)", async () => {
    const sim = await simulator();
    const port = modbusPort(sim.port);
    const first = PLAN[0];
    if (first === undefined) throw new Error("empty plan");
    const answers = await Promise.all(
      [1, 7, 1, 7, 1, 7].map((unitId) => port.readRegisters(unitId, first.fn, first.address, first.count)),
    );
    expect(answers[0]).toEqual(answers[2]);
    expect(answers[1]).toEqual(answers[3]);
    expect(answers[0]).not.toEqual(answers[1]);
  });

  it("maps failures: silent unit → modbus.timeout, unknown register → modbus.exception 2, no server → modbus.connection", async () => {
    const sim = await simulator();
    const port = modbusPort(sim.port, 200);
    const timeout = await port.readRegisters(42, "input", 0, 2).catch((e: unknown) => e);
    expect(timeout).toMatchObject({ code: "modbus.timeout", retryable: true });
    const exception = await port.readRegisters(1, "holding", 40_000, 2).catch((e: unknown) => e);
    expect(exception).toBeInstanceOf(EdgemeterError);
    expect(exception).toMatchObject({ code: "modbus.exception", retryable: false, context: { exceptionCode: 2 } });
    // The connection survives both: the next read works.
    expect(await port.readRegisters(1, "input", 0, 2)).toHaveLength(2);

    const closed = modbusPort(await freePort());
    const refused = await closed.readRegisters(1, "input", 0, 2).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "modbus.connection", retryable: true });
  });

  it("reconnects after the server went away and came back", async () => {
    const first = await simulator();
    const port = modbusPort(first.port, 300);
    expect(await port.readRegisters(1, "input", 0, 2)).toHaveLength(2);
    await first.close();
    const failed = await port.readRegisters(1, "input", 0, 2).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(EdgemeterError);
    expect((failed as EdgemeterError).retryable).toBe(true);
    await simulator(first.port);
    expect(await port.readRegisters(1, "input", 0, 2)).toHaveLength(2);
  });
});
