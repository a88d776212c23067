import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { decodeResponse, loadProfile, planReads, startSimulator } from "@edgemeter/hardware";
import { socatBinary, startPtyPair } from "@edgemeter/hardware/testing";
import type { MeasurementName } from "@edgemeter/shared";
import { findBinary, freePort, requireService, waitFor } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import type { ModbusPort } from "./modbusPort.js";
import { ModbusSerialPort } from "./modbusSerialPort.js";

/**
 * Interop with independent Modbus implementations, so our adapter and our simulator are
 * not only right about each other: pymodbus (Debian python3-pymodbus 3.0) as the slave the
 * gateway reads, mbpoll (Debian) as the master that reads our simulator.
 */

const PROFILE = loadProfile("sdm630");
const PLAN = planReads(PROFILE);
const SLAVE_SCRIPT = fileURLToPath(new URL("../../../hardware/scripts/pymodbusFloatSlave.py", import.meta.url));
// Debian's interpreter: another python3 earlier on PATH may lack python3-pymodbus.
const PYTHON = "/usr/bin/python3";
const HAVE_PYMODBUS = requireService(
  "Debian python3-pymodbus (3.0) with python3-serial-asyncio",
  existsSync(PYTHON) &&
    spawnSync(PYTHON, ["-c", "import pymodbus.server, serial_asyncio"], { encoding: "utf8" }).status === 0,
  "apt-get install python3-pymodbus python3-serial-asyncio",
);
const MBPOLL = findBinary("mbpoll", ["/usr/bin/mbpoll"]);
const HAVE_MBPOLL = requireService("mbpoll", MBPOLL !== null, "apt-get install mbpoll");
const HAVE_SOCAT = requireService("socat", socatBinary() !== null, "apt-get install socat");

/** Distinct, plausible values for every SDM630 register: an SDM630-like slave. */
const EXPECTED: Partial<Record<MeasurementName, number>> = Object.fromEntries(
  PROFILE.registers.map((r, i) => [r.measurement, Math.fround(100 + i * 11.25 + 0.5)]),
);

function readPlanOnce(port: ModbusPort, unitId: number) {
  return (async () => {
    const values: Record<string, number> = {};
    for (const request of PLAN) {
      const decoded = decodeResponse(
        request,
        await port.readRegisters(unitId, request.fn, request.address, request.count),
      );
      expect(decoded.errors).toEqual([]);
      Object.assign(values, decoded.values);
    }
    return values;
  })();
}

describe("interop", () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function startSlave(args: string[]): Promise<ChildProcess> {
    const spec = JSON.stringify({
      unit: 1,
      input: Object.fromEntries(PROFILE.registers.map((r) => [String(r.address), EXPECTED[r.measurement]])),
    });
    const child = spawn(PYTHON, [SLAVE_SCRIPT, ...args, spec], { stdio: ["ignore", "pipe", "pipe"] });
    cleanups.push(async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    });
    let output = "";
    child.stdout?.on("data", (c: Buffer) => {
      output += c.toString();
    });
    child.stderr?.on("data", (c: Buffer) => {
      output += c.toString();
    });
    return waitFor(
      () =>
        child.exitCode !== null ? Promise.reject(new Error(output)) : output.includes("ready") ? child : undefined,
      "pymodbus slave ready",
      20_000,
      50,
    );
  }

  async function expectSlaveValues(port: ModbusPort) {
    // The slave may still be opening its port after printing "ready": retry the first read.
    const values = await waitFor(() => readPlanOnce(port, 1), "first answer from pymodbus", 20_000, 200);
    expect(Object.keys(values).sort()).toEqual(PROFILE.registers.map((r) => r.measurement).sort());
    for (const [name, value] of Object.entries(values)) expect(value).toBe(EXPECTED[name as MeasurementName]);
  }

  it.runIf(HAVE_PYMODBUS)(
    "the gateway reads an SDM630-like pymodbus slave over Modbus TCP",
    async () => {
      const tcpPort = await freePort();
      await startSlave(["tcp", `127.0.0.1:${tcpPort}`]);
      const port = new ModbusSerialPort({
        host: "127.0.0.1",
        port: tcpPort,
        timeoutMs: 1_000,
        interFrameGapMs: 0,
        logger: silentLogger(),
      });
      cleanups.push(() => port.close());
      await expectSlaveValues(port);
    },
    60_000,
  );

  it.runIf(HAVE_PYMODBUS && HAVE_SOCAT)(
    "the gateway reads an SDM630-like pymodbus slave over RTU on a socat pty",
    async () => {
      const pty = await startPtyPair();
      cleanups.push(() => pty.close());
      await startSlave(["rtu", pty.slavePath, "9600"]);
      const port = new ModbusSerialPort({
        path: pty.masterPath,
        baudRate: 9_600,
        parity: "none",
        dataBits: 8,
        stopBits: 1,
        timeoutMs: 1_000,
        interFrameGapMs: 0,
        logger: silentLogger(),
      });
      cleanups.push(() => port.close());
      await expectSlaveValues(port);
    },
    60_000,
  );

  /**
   * Reads every request of the SDM630 plan with mbpoll (float32, high word first, PDU
   * addresses), one invocation each; parses its `[72]: \t12345.6` lines → address → value.
   */
  async function mbpoll(connection: string[], target: string): Promise<Map<number, number>> {
    const values = new Map<number, number>();
    for (const request of PLAN) {
      const args = [...connection, "-0", "-t", "3:float", "-B", "-1", "-r", String(request.address)];
      // Asynchronously: the simulator answering it runs in this very process.
      const child = spawn(MBPOLL ?? "mbpoll", [...args, "-c", String(request.count / 2), target]);
      let stdout = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      const status = await new Promise<number | null>((resolve) => child.once("exit", resolve));
      expect(status, stdout).toBe(0);
      for (const match of stdout.matchAll(/^\[(\d+)\]:\s+(\S+)$/gm)) values.set(Number(match[1]), Number(match[2]));
    }
    return values;
  }

  const MBPOLL_REGISTERS = PROFILE.registers;

  function expectSameAsSnapshot(values: Map<number, number>, snapshot: Record<MeasurementName, number>) {
    for (const register of MBPOLL_REGISTERS) {
      const got = values.get(register.address);
      expect(got, register.measurement).toBeDefined();
      // mbpoll prints floats with %g (6 significant digits).
      const expected = snapshot[register.measurement];
      expect(Math.abs((got ?? Number.NaN) - expected)).toBeLessThanOrEqual(Math.abs(expected) * 1e-5 + 1e-6);
    }
  }

  it.runIf(HAVE_MBPOLL)("mbpoll reads our simulator over Modbus TCP and gets the same values", async () => {
    const sim = await startSimulator({ port: 0, tickMs: 0, meters: [{ unitId: 1, profile: "sdm630" }] });
    cleanups.push(() => sim.close());
    const values = await mbpoll(["-m", "tcp", "-p", String(sim.port), "-a", "1"], "127.0.0.1");
    expectSameAsSnapshot(values, sim.snapshot(1).values);
    const port = new ModbusSerialPort({
      host: "127.0.0.1",
      port: sim.port,
      timeoutMs: 1_000,
      interFrameGapMs: 0,
      logger: silentLogger(),
    });
    cleanups.push(() => port.close());
    // …and the gateway's own read of the same simulator agrees with mbpoll.
    const ours = await readPlanOnce(port, 1);
    for (const register of MBPOLL_REGISTERS) {
      expect(Math.fround(ours[register.measurement] ?? Number.NaN)).toBeCloseTo(values.get(register.address) ?? 0, 1);
    }
  });

  it.runIf(HAVE_MBPOLL && HAVE_SOCAT)("mbpoll reads our simulator over RTU on a socat pty (8E1)", async () => {
    const pty = await startPtyPair();
    cleanups.push(() => pty.close());
    const sim = await startSimulator({
      tickMs: 0,
      meters: [{ unitId: 17, profile: "sdm630" }],
      rtu: { path: pty.slavePath, baudRate: 9_600, parity: "even", emulateLineTiming: true },
    });
    cleanups.push(() => sim.close());
    const values = await mbpoll(["-m", "rtu", "-b", "9600", "-P", "even", "-a", "17"], pty.masterPath);
    expectSameAsSnapshot(values, sim.snapshot(17).values);
  });
});
