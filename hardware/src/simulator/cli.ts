#!/usr/bin/env node
/**
 * edgemeter-simulator: simulated meters over Modbus TCP, for demos and end-to-end tests.
 *
 *   edgemeter-simulator --port 5020 --host 127.0.0.1 --meters 3 --profile sdm630 [--first-unit 1]
 *   edgemeter-simulator --rtu /tmp/ttySIM --baud 9600 --parity even --turnaround-ms 10 --meters 32
 *
 * Prints `simulator: modbus-tcp://host:port units 1-3` once it listens (scripts wait for
 * that line) and runs until SIGINT/SIGTERM.
 */
import { parseArgs } from "node:util";
import { describeError, EdgemeterError } from "@edgemeter/shared";
import { pino } from "pino";
import { startSimulator } from "./simulator.js";

const USAGE = `usage: edgemeter-simulator [--port 5020] [--host 127.0.0.1] [--meters 1] [--profile sdm630]
                           [--first-unit 1] [--tick-ms 1000] [--utc-offset-minutes 0]
  --port                TCP port (0 picks a free one, printed on start)
  --meters              number of meters, on consecutive unit ids from --first-unit
  --profile             meter profile id (hardware/profiles/<id>.yaml) or path of a profile YAML
  --utc-offset-minutes  local time of the simulated households, for their daily load shape
  --rtu PATH            also serve Modbus RTU on this serial line (e.g. one end of a socat pty pair);
                        with --rtu and no --port, RTU only
  --baud 9600 --parity none|even|odd --data-bits 8 --stop-bits 1
                        the RTU line's settings (its speed is emulated: answers come when they would on the wire)
  --turnaround-ms 0     the meters' answer delay after a request`;

function integerOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^-?\d+$/.test(text) || value < min || value > max) {
    throw new EdgemeterError("config.invalid", `--${name}: must be an integer ${min}-${max}, got "${text}"`);
  }
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      rtu: { type: "string" },
      baud: { type: "string", default: "9600" },
      parity: { type: "string", default: "none" },
      "data-bits": { type: "string", default: "8" },
      "stop-bits": { type: "string", default: "1" },
      "turnaround-ms": { type: "string", default: "0" },
      host: { type: "string", default: "127.0.0.1" },
      meters: { type: "string", default: "1" },
      profile: { type: "string", default: "sdm630" },
      "first-unit": { type: "string", default: "1" },
      "tick-ms": { type: "string", default: "1000" },
      "utc-offset-minutes": { type: "string", default: "0" },
      help: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const port =
    values.port !== undefined
      ? integerOption("port", values.port, 0, 65_535)
      : values.rtu === undefined
        ? 5020
        : undefined;
  const parity = values.parity;
  if (parity !== "none" && parity !== "even" && parity !== "odd") {
    throw new EdgemeterError("config.invalid", `--parity: must be none, even or odd, got "${parity}"`);
  }
  const lineParity: "none" | "even" | "odd" = parity;
  const rtu =
    values.rtu === undefined
      ? undefined
      : {
          path: values.rtu,
          baudRate: integerOption("baud", values.baud, 300, 921_600),
          parity: lineParity,
          dataBits: integerOption("data-bits", values["data-bits"], 7, 8) as 7 | 8,
          stopBits: integerOption("stop-bits", values["stop-bits"], 1, 2) as 1 | 2,
          turnaroundMs: integerOption("turnaround-ms", values["turnaround-ms"], 0, 10_000),
        };
  const firstUnit = integerOption("first-unit", values["first-unit"], 1, 247);
  const count = integerOption("meters", values.meters, 1, 248 - firstUnit);
  const tickMs = integerOption("tick-ms", values["tick-ms"], 1, 3_600_000);
  const utcOffsetMinutes = integerOption("utc-offset-minutes", values["utc-offset-minutes"], -720, 840);
  const logger = pino({ level: process.env.LOG_LEVEL ?? "info" }, pino.destination(2));

  const unitIds = Array.from({ length: count }, (_, i) => firstUnit + i);
  const simulator = await startSimulator({
    host: values.host,
    ...(port === undefined ? {} : { port }),
    ...(rtu === undefined ? {} : { rtu }),
    tickMs,
    utcOffsetMinutes,
    logger,
    meters: unitIds.map((unitId) => ({ unitId, profile: values.profile })),
  });
  const units = `units ${firstUnit}-${firstUnit + count - 1}`;
  if (port !== undefined) console.log(`simulator: modbus-tcp://${values.host}:${simulator.port} ${units}`);
  if (rtu !== undefined) console.log(`simulator: modbus-rtu://${rtu.path} ${rtu.baudRate} baud ${units}`);

  const stop = (signal: string) => {
    logger.info({ signal }, "stopping");
    simulator.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`simulator: ${describeError(error)}`);
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}

main().catch((error: unknown) => {
  // Bad arguments and bad profiles are the user's to fix: one readable message, no stack.
  console.error(describeError(error));
  if (!(error instanceof EdgemeterError)) console.error(USAGE);
  process.exit(2);
});
