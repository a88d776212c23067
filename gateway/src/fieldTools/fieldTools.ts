import { parseArgs } from "node:util";
import { decodeResponse, loadProfile, planReads } from "@edgemeter/hardware";
import { describeError, EdgemeterError, isEdgemeterError, MEASUREMENTS } from "@edgemeter/shared";
import type { Logger } from "pino";
import { silentLogger } from "../logging/logger.js";
import type { ModbusPort } from "../modbus/modbusPort.js";
import { ModbusSerialPort, type ModbusSerialPortOptions } from "../modbus/modbusSerialPort.js";

/**
 * Field tools for the technician at the meter cabinet:
 *   probe: read one meter once with a profile and print every decoded value with its unit;
 *   scan:  find which unit ids answer on a bus.
 * They open the port exclusively, like the daemon: stop the gateway first.
 */

export { FIELD_TOOLS_USAGE } from "./usage.js";

interface Output {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** "1-247", "3", "1,5,10-12" → sorted unique unit ids in 1..247. Throws EdgemeterError("config.invalid"). */
export function parseUnitRange(text: string): number[] {
  const units = new Set<number>();
  for (const part of text.split(",")) {
    const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    const from = Number(match?.[1]);
    const to = match?.[2] === undefined ? from : Number(match[2]);
    if (match === null || !(from >= 1 && to <= 247 && from <= to)) {
      throw new EdgemeterError("config.invalid", `--units: "${part}" is not a unit id or range within 1-247`);
    }
    for (let unit = from; unit <= to; unit++) units.add(unit);
  }
  return [...units].sort((a, b) => a - b);
}

/** --port and line options → adapter options. Throws EdgemeterError("config.invalid") naming the option. */
export function portOptions(
  values: { port?: string; baud?: string; parity?: string; "data-bits"?: string; "stop-bits"?: string },
  timeoutMs: number,
  logger: Logger,
): ModbusSerialPortOptions {
  const target = values.port;
  if (target === undefined) throw new EdgemeterError("config.invalid", "--port is required (e.g. /dev/ttyUSB0)");
  const tcp = /^(tcp|rtu\+tcp):\/\/([^:/]+)(?::(\d+))?\/?$/.exec(target);
  if (tcp !== null) {
    return {
      host: tcp[2] ?? "",
      port: integer("port", tcp[3] ?? "502", 1, 65_535),
      framing: tcp[1] === "tcp" ? "tcp" : "rtu",
      timeoutMs,
      interFrameGapMs: 0,
      logger,
    };
  }
  const parity = values.parity ?? "none";
  if (parity !== "none" && parity !== "even" && parity !== "odd") {
    throw new EdgemeterError("config.invalid", `--parity: must be none, even or odd, got "${parity}"`);
  }
  return {
    path: target,
    baudRate: integer("baud", values.baud ?? "9600", 300, 921_600),
    parity,
    dataBits: integer("data-bits", values["data-bits"] ?? "8", 7, 8) as 7 | 8,
    stopBits: integer("stop-bits", values["stop-bits"] ?? "1", 1, 2) as 1 | 2,
    timeoutMs,
    interFrameGapMs: 0,
    logger,
  };
}

function integer(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new EdgemeterError("config.invalid", `--${name}: must be an integer ${min}-${max}, got "${text}"`);
  }
  return value;
}

/** Reads every request of the profile's plan once; prints `measurement  value unit  (label)`. Exit 0 if any value. */
export async function probe(port: ModbusPort, unitId: number, profileRef: string, io: Output): Promise<number> {
  const profile = loadProfile(profileRef);
  io.out(`unit ${unitId}, profile ${profile.id} (${profile.manufacturer} ${profile.model})`);
  let values = 0;
  for (const request of planReads(profile)) {
    const where = `${request.fn} ${request.address}+${request.count}`;
    try {
      const decoded = decodeResponse(
        request,
        await port.readRegisters(unitId, request.fn, request.address, request.count),
      );
      for (const register of request.registers) {
        const value = decoded.values[register.measurement];
        const meta = MEASUREMENTS[register.measurement];
        const shown = value === undefined ? "n/a" : `${formatNumber(value)}${meta.unit === "" ? "" : ` ${meta.unit}`}`;
        if (value !== undefined) values++;
        io.out(`  ${register.measurement.padEnd(28)} ${shown.padEnd(18)} ${meta.label}`);
      }
      for (const error of decoded.errors) io.err(`  ${error.code}: ${error.message}`);
    } catch (error) {
      io.err(`  ${where}: ${isEdgemeterError(error) ? `${error.code}: ` : ""}${describeError(error)}`);
    }
  }
  if (values === 0) io.err(`unit ${unitId} gave no values`);
  return values > 0 ? 0 : 1;
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(7).replace(/0+$/, "").replace(/\.$/, "");
}

/**
 * Asks each unit id for one register (the profile's first read, else holding register 0).
 * Any answer, an exception included, means a device is there; silence means none.
 */
export async function scan(
  port: ModbusPort,
  units: readonly number[],
  profileRef: string | undefined,
  io: Output,
): Promise<number[]> {
  const first = profileRef === undefined ? undefined : planReads(loadProfile(profileRef))[0];
  const fn = first?.fn ?? "holding";
  const address = first?.address ?? 0;
  const found: number[] = [];
  for (const unitId of units) {
    try {
      await port.readRegisters(unitId, fn, address, first === undefined ? 1 : Math.min(first.count, 2));
      found.push(unitId);
      io.out(`unit ${unitId}: answers`);
    } catch (error) {
      if (isEdgemeterError(error, "modbus.exception")) {
        found.push(unitId);
        io.out(`unit ${unitId}: answers (${describeError(error)})`);
      } else if (isEdgemeterError(error, "modbus.connection")) {
        throw error;
      } else if (isEdgemeterError(error, "modbus.crc")) {
        io.err(`unit ${unitId}: garbled answer (CRC): check wiring, termination and baud rate`);
      }
    }
  }
  io.out(`found ${found.length} of ${units.length}: ${found.join(", ") || "none"}`);
  return found;
}

/** `edgemeter-gateway probe|scan …`: exit 0 found/read, 1 nothing, 2 bad arguments. */
export async function runFieldTool(command: "probe" | "scan", argv: string[], io: Output): Promise<number> {
  let parsed: Partial<Record<keyof typeof OPTIONS, string>>;
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: false, options: OPTIONS }).values;
  } catch (error) {
    io.err(`${command}: ${describeError(error)}`);
    return 2;
  }
  let port: ModbusSerialPort;
  try {
    const timeoutMs = integer("timeout-ms", parsed["timeout-ms"] ?? (command === "scan" ? "200" : "1000"), 20, 60_000);
    port = new ModbusSerialPort(portOptions(parsed, timeoutMs, silentLogger()));
    if (command === "probe") {
      if (parsed.unit === undefined || parsed.profile === undefined) {
        throw new EdgemeterError("config.invalid", "probe needs --unit N and --profile ID (or path of a profile YAML)");
      }
      const unitId = integer("unit", parsed.unit, 1, 247);
      loadProfile(parsed.profile);
      try {
        return await probe(port, unitId, parsed.profile, io);
      } finally {
        await port.close();
      }
    }
    const units = parseUnitRange(parsed.units ?? "1-247");
    if (parsed.profile !== undefined) loadProfile(parsed.profile);
    try {
      const found = await scan(port, units, parsed.profile, io);
      return found.length > 0 ? 0 : 1;
    } finally {
      await port.close();
    }
  } catch (error) {
    io.err(`${command}: ${isEdgemeterError(error) ? `${error.code}: ` : ""}${describeError(error)}`);
    const usage = ["config.invalid", "profile.invalid", "profile.notFound"];
    return isEdgemeterError(error) && usage.includes(error.code) ? 2 : 1;
  }
}

const OPTIONS = {
  port: { type: "string" },
  baud: { type: "string" },
  parity: { type: "string" },
  "data-bits": { type: "string" },
  "stop-bits": { type: "string" },
  unit: { type: "string" },
  units: { type: "string" },
  profile: { type: "string" },
  "timeout-ms": { type: "string" },
} as const;
