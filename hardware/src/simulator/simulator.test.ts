import { isEdgemeterError } from "@edgemeter/shared";
import { waitFor } from "@edgemeter/shared/testing";
import modbusSerial from "modbus-serial";
import { afterEach, describe, expect, it } from "vitest";
import { decodeResponse, planReads } from "../decoding/readPlan.js";
import { loadProfile } from "../profiles/loadProfile.js";
import { type SimulatorHandle, startSimulator } from "./simulator.js";

// modbus-serial is CommonJS: `.default` is the client class for TypeScript and at run time alike.
const ModbusRTU = modbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

const sdm630 = loadProfile("sdm630");
const started: SimulatorHandle[] = [];
const clients: ModbusRTU[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) await new Promise<void>((resolve) => client.close(() => resolve()));
  for (const simulator of started.splice(0)) await simulator.close();
});

async function simulatorWith(options: Parameters<typeof startSimulator>[0]): Promise<SimulatorHandle> {
  const simulator = await startSimulator(options);
  started.push(simulator);
  return simulator;
}

async function clientFor(port: number): Promise<ModbusRTU> {
  const client = new ModbusRTU();
  clients.push(client);
  await client.connectTCP("127.0.0.1", { port });
  client.setTimeout(2_000);
  return client;
}

/** Reads a whole meter over Modbus TCP the way the gateway will: plan, read, decode. */
async function readMeter(client: ModbusRTU, unitId: number): Promise<Record<string, number>> {
  client.setID(unitId);
  const values: Record<string, number> = {};
  for (const request of planReads(sdm630)) {
    const answer =
      request.fn === "input"
        ? await client.readInputRegisters(request.address, request.count)
        : await client.readHoldingRegisters(request.address, request.count);
    const decoded = decodeResponse(request, answer.data);
    expect(decoded.errors).toEqual([]);
    Object.assign(values, decoded.values);
  }
  return values;
}

/** A clock the test moves by hand, starting on a weekday at 18:00 UTC (evening peak). */
function manualClock(startMs = Date.UTC(2026, 0, 14, 18, 0, 0)) {
  let nowMs = startMs;
  return { now: () => nowMs, advance: (ms: number) => (nowMs += ms) };
}

describe("meter simulator over Modbus TCP", () => {
  it("serves exactly the snapshot, decoded through the profile", async () => {
    const clock = manualClock();
    const simulator = await simulatorWith({
      port: 0,
      tickMs: 0,
      clock: clock.now,
      meters: [{ unitId: 1, profile: "sdm630", startEnergyKwh: 1234.5 }],
    });
    const client = await clientFor(simulator.port);
    clock.advance(60_000);
    simulator.tick();
    const snapshot = simulator.snapshot(1);
    const read = await readMeter(client, 1);
    const served = Object.fromEntries(sdm630.registers.map((r) => [r.measurement, snapshot.values[r.measurement]]));
    expect(read).toEqual(served);
    expect(Object.keys(read).length).toBe(sdm630.registers.length);

    // Believable: what a three-phase household meter on a 230 V / 50 Hz grid shows.
    for (const v of [read.voltageL1V, read.voltageL2V, read.voltageL3V]) {
      expect(v).toBeGreaterThan(220);
      expect(v).toBeLessThan(240);
    }
    expect(read.voltageL1L2V).toBeGreaterThan(380);
    expect(read.voltageL1L2V).toBeLessThan(415);
    expect(read.frequencyHz).toBeGreaterThan(49.8);
    expect(read.frequencyHz).toBeLessThan(50.2);
    expect(read.powerFactor).toBeGreaterThan(0.9);
    expect(read.powerFactor).toBeLessThan(1);
    expect(read.activePowerW).toBeGreaterThan(0);
    const phaseSum = (read.activePowerL1W ?? 0) + (read.activePowerL2W ?? 0) + (read.activePowerL3W ?? 0);
    expect(phaseSum).toBeCloseTo(read.activePowerW ?? 0, 1);
    const expectedCurrent = (read.activePowerL1W ?? 0) / ((read.voltageL1V ?? 1) * (read.powerFactorL1 ?? 1));
    expect(read.currentL1A).toBeCloseTo(expectedCurrent, 3);
    expect(read.importEnergyKwh).toBeGreaterThan(1234.5);
  });

  it("integrates the served power into the energy register (injected clock)", async () => {
    const clock = manualClock();
    const simulator = await simulatorWith({
      port: 0,
      tickMs: 0,
      clock: clock.now,
      meters: [{ unitId: 7, profile: sdm630, baseLoadW: 3_000, startEnergyKwh: 500 }],
    });
    const client = await clientFor(simulator.port);
    const before = await readMeter(client, 7);
    let expectedKwh = 0;
    for (let step = 0; step < 120; step++) {
      const powerW = simulator.snapshot(7).values.activePowerW;
      const dtMs = 15_000 + (step % 7) * 1_000; // uneven polling intervals
      clock.advance(dtMs);
      simulator.tick();
      expectedKwh += (powerW * dtMs) / 3_600_000 / 1000;
    }
    const after = await readMeter(client, 7);
    const consumedKwh = (after.importEnergyKwh ?? 0) - (before.importEnergyKwh ?? 0);
    expect(expectedKwh).toBeGreaterThan(1); // ~3 kW for ~40 min
    // float32 near 500 kWh resolves 1/32768 kWh; the rest is exact.
    expect(Math.abs(consumedKwh - expectedKwh)).toBeLessThan(2 / 32_768);
    expect(after.exportEnergyKwh).toBe(0);

    const history = simulator.history(7);
    expect(history.length).toBe(121);
    expect(history.at(-1)?.values).toEqual(simulator.snapshot(7).values);
    expect(history.at(-1)?.fromMs).toBe(clock.now());
    // Every served step adds the previously served power × the time it was served (within float32).
    for (let i = 1; i < history.length; i++) {
      const a = history[i - 1];
      const b = history[i];
      if (!a || !b) continue;
      const stepKwh = (a.values.activePowerW * (b.fromMs - a.fromMs)) / 3_600_000 / 1000;
      expect(Math.abs(b.values.importEnergyKwh - a.values.importEnergyKwh - stepKwh)).toBeLessThan(2 / 32_768);
      expect(b.values.importEnergyKwh).toBeGreaterThanOrEqual(a.values.importEnergyKwh);
    }
  });

  it("answers a register outside the profile with exception 2 and too long a read with exception 3", async () => {
    const simulator = await simulatorWith({ port: 0, tickMs: 0, meters: [{ unitId: 1, profile: "sdm630" }] });
    const client = await clientFor(simulator.port);
    client.setID(1);
    await expect(client.readInputRegisters(0x1000, 2)).rejects.toMatchObject({ modbusCode: 2 });
    await expect(client.readInputRegisters(0x00e0, 4)).rejects.toMatchObject({ modbusCode: 2 }); // past the last register
    await expect(client.readHoldingRegisters(0x0000, 2)).rejects.toMatchObject({ modbusCode: 2 }); // no holding registers
    await expect(client.readInputRegisters(0x0000, 1)).resolves.toMatchObject({ data: [expect.any(Number)] });
    await expect(client.readInputRegisters(0x0000, 81)).rejects.toMatchObject({ modbusCode: 3 });
    // A gap planReads may merge across (<= maxGap) reads as zeros.
    const gap = await client.readInputRegisters(0x003e, 10);
    expect(gap.data.slice(2, 8)).toEqual(new Array(6).fill(0));
    // A wider hole (0x0012..0x001D, 12 registers) is outside what the meter answers.
    await expect(client.readInputRegisters(0x0010, 16)).rejects.toMatchObject({ modbusCode: 2 });
  });

  it("serves several meters on one port, each with its own values, and ignores unknown unit ids", async () => {
    const clock = manualClock();
    const simulator = await simulatorWith({
      port: 0,
      tickMs: 0,
      clock: clock.now,
      meters: [
        { unitId: 1, profile: "sdm630", startEnergyKwh: 100 },
        { unitId: 2, profile: "sdm630", startEnergyKwh: 2000 },
        { unitId: 3, profile: "sdm630", startEnergyKwh: 30000 },
      ],
    });
    const client = await clientFor(simulator.port);
    clock.advance(1_000);
    simulator.tick();
    const readings = [await readMeter(client, 1), await readMeter(client, 2), await readMeter(client, 3)];
    readings.forEach((reading, i) => {
      const snapshot = simulator.snapshot(i + 1).values;
      expect(reading.voltageL1V).toBe(snapshot.voltageL1V);
      expect(reading.activePowerW).toBe(snapshot.activePowerW);
    });
    expect(readings.map((r) => Math.floor(r.importEnergyKwh ?? 0))).toEqual([100, 2000, 30000]);
    expect(new Set(readings.map((r) => r.voltageL1V)).size).toBe(3);

    client.setID(9);
    client.setTimeout(300);
    await expect(client.readInputRegisters(0, 2)).rejects.toMatchObject({ errno: "ETIMEDOUT" });
    expect(() => simulator.snapshot(9)).toThrow(/unit 9 is not simulated/);
  });

  it("repeats the same values for the same seed and tick times", async () => {
    const run = async () => {
      const clock = manualClock();
      const simulator = await simulatorWith({
        port: 0,
        tickMs: 0,
        clock: clock.now,
        meters: [{ unitId: 1, profile: "sdm630", seed: 42 }],
      });
      for (let i = 0; i < 10; i++) {
        clock.advance(10_000);
        simulator.tick();
      }
      return simulator.snapshot(1).values;
    };
    const [a, b] = [await run(), await run()];
    expect(a).toEqual(b);
  });

  it("ticks on its own timer from the clock", async () => {
    const simulator = await simulatorWith({ port: 0, tickMs: 20, meters: [{ unitId: 1, profile: "sdm630" }] });
    const first = simulator.snapshot(1).atMs;
    const later = await waitFor(() => (simulator.history(1).length > 1 ? simulator.snapshot(1) : undefined), "a tick");
    expect(later.atMs).toBeGreaterThan(first);
  });

  it("rejects bad options with what and where", async () => {
    await expect(
      startSimulator({
        port: 0,
        meters: [
          { unitId: 0, profile: "sdm630" },
          { unitId: 5, profile: "sdm630" },
          { unitId: 5, profile: "sdm630" },
        ],
      }),
    ).rejects.toThrow(
      "simulator: meters.0.unitId: must be an integer 1-247, got 0\nsimulator: meters.2.unitId: unit 5 is already simulated",
    );
    await expect(startSimulator({ port: 0, meters: [{ unitId: 1, profile: "nope" }] })).rejects.toSatisfy((error) =>
      isEdgemeterError(error, "profile.notFound"),
    );
  });
});
