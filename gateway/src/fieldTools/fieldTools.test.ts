import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startSimulator } from "@edgemeter/hardware";
import { socatBinary, startPtyPair } from "@edgemeter/hardware/testing";
import { freePort, requireService, waitFor } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import { ModbusSerialPort } from "../modbus/modbusSerialPort.js";
import { parseUnitRange, probe, scan } from "./fieldTools.js";

const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
const HAVE_SOCAT = requireService("socat", socatBinary() !== null, "apt-get install socat");

function collect() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

describe("parseUnitRange", () => {
  it("reads ranges and lists, and names a bad part", () => {
    expect(parseUnitRange("1-3,7,2")).toEqual([1, 2, 3, 7]);
    expect(parseUnitRange("1-247")).toHaveLength(247);
    expect(() => parseUnitRange("0-5")).toThrow(/"0-5" is not a unit id or range within 1-247/);
    expect(() => parseUnitRange("9-3")).toThrow(/--units/);
  });
});

describe.runIf(HAVE_SOCAT)("probe and scan against the simulator", () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("probe over RTU prints every value of the profile with its unit; scan finds the units that answer", async () => {
    const pty = await startPtyPair();
    cleanups.push(() => pty.close());
    const sim = await startSimulator({
      tickMs: 0,
      meters: [
        { unitId: 3, profile: "sdm630" },
        { unitId: 9, profile: "abb-b23" },
      ],
      rtu: { path: pty.slavePath, baudRate: 19_200, parity: "even", emulateLineTiming: false },
    });
    cleanups.push(() => sim.close());
    const port = new ModbusSerialPort({
      path: pty.masterPath,
      baudRate: 19_200,
      parity: "even",
      dataBits: 8,
      stopBits: 1,
      timeoutMs: 100,
      interFrameGapMs: 0,
      logger: silentLogger(),
    });
    cleanups.push(() => port.close());

    const probed = collect();
    expect(await probe(port, 3, "sdm630", probed.io)).toBe(0);
    const energy = sim.snapshot(3).values.importEnergyKwh;
    const line = probed.out.find((l) => l.trim().startsWith("importEnergyKwh"));
    expect(line).toMatch(/ kWh /);
    expect(Number(line?.trim().split(/\s+/)[1])).toBeCloseTo(energy, 1);
    expect(probed.out).toHaveLength(1 + 25);
    expect(probed.err).toEqual([]);

    const scanned = collect();
    expect(await scan(port, parseUnitRange("1-12"), undefined, scanned.io)).toEqual([3, 9]);
    expect(scanned.out.at(-1)).toBe("found 2 of 12: 3, 9");
  });

  it("the built CLI probes through an RS-485/Ethernet converter (rtu+tcp://, socat TCP ↔ pty)", async () => {
    if (!requireService("the built gateway CLI", existsSync(CLI), "run `npx tsc -b gateway` first")) return;
    const pty = await startPtyPair();
    cleanups.push(() => pty.close());
    const sim = await startSimulator({
      tickMs: 0,
      meters: [{ unitId: 4, profile: "dtsu666" }],
      rtu: { path: pty.slavePath, emulateLineTiming: false },
    });
    cleanups.push(() => sim.close());
    const tcpPort = await freePort();
    // socat plays the converter: TCP on one side, the serial line (the pty's other end) on the other.
    const converter: ChildProcess = spawn(socatBinary() ?? "socat", [
      "-d",
      "-d",
      `TCP-LISTEN:${tcpPort},bind=127.0.0.1,reuseaddr`,
      `FILE:${pty.masterPath},raw,echo=0`,
    ]);
    cleanups.push(() => converter.kill("SIGTERM"));
    // Not a test connection: a connection that closes would hang up the pty and end the pair.
    let socatLog = "";
    converter.stderr?.on("data", (c: Buffer) => {
      socatLog += c.toString();
    });
    await waitFor(() => (/listening on/.test(socatLog) ? true : undefined), "the converter listening", 10_000, 20);
    const cli = spawn(process.execPath, [
      CLI,
      "probe",
      "--port",
      `rtu+tcp://127.0.0.1:${tcpPort}`,
      "--unit",
      "4",
      "--profile",
      "dtsu666",
    ]);
    let stdout = "";
    let stderr = "";
    cli.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    cli.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => cli.once("exit", resolve));
    cleanups.push(() => cli.kill("SIGTERM"));
    expect(await exited, stderr).toBe(0);
    expect(stdout).toMatch(/^ {2}frequencyHz\s+[\d.]+ Hz\s+Frequency$/m);
    expect(stdout).toMatch(/^ {2}importEnergyKwh\s+[\d.]+ kWh/m);
  });

  it("the built CLI refuses bad arguments with exit 2 and names the option", () => {
    if (!existsSync(CLI)) return;
    const result = spawnSync(process.execPath, [CLI, "scan", "--port", "/dev/null", "--units", "0-300"], {
      encoding: "utf8",
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('--units: "0-300"');
  });
});
