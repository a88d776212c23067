/**
 * `npm run bench -- modbus-bus` (issue 3). A figure, not a test: 32 simulated SDM630 on one
 * Modbus RTU bus (a socat pty pair) with line-timing emulation (8E1, 11 bits per character)
 * and 10 ms meter turnaround, polled back to back by the gateway's BusScheduler through
 * ModbusSerialPort (modbus-serial connectRTUBuffered), at 9600 and at 38400 baud.
 *
 * Baseline in the same run: the theoretical bus time of the plan used,
 *   T(N) = (13 + 2N) × t_char + 2 × t3.5 + t_turn per request of N registers,
 *   t_char = 11 / baud, t3.5 = 3.5 × t_char up to 19200 baud, 1.75 ms above,
 * summed over the meter's read plan. ratio = measured meters per second ÷ theoretical
 * meters per second (1.0 = the bus is used as fully as the line allows). Also printed: the
 * same bus without line-timing emulation, i.e. the software's own cost per meter.
 * Last line: {"bench":"modbus-bus","ratio9600":…,"ratio38400":…,"metersPerSecond9600":…,
 * "metersPerSecond38400":…,"requestsPerMeter":…}
 */

import { BusScheduler, ModbusSerialPort, silentLogger, systemClock } from "@edgemeter/gateway";
import { loadProfile, planReads, readTransactionMs, startSimulator, t35Ms } from "@edgemeter/hardware";
import { startPtyPair } from "@edgemeter/hardware/testing";

const METERS = 32;
const TURNAROUND_MS = 10;
const PROFILE = loadProfile("sdm630");
const PLAN = planReads(PROFILE);

interface Run {
  baud: number;
  emulate: boolean;
  metersPerSecond: number;
  theoreticalMetersPerSecond: number;
}

async function run(baud: number, emulate: boolean, seconds: number): Promise<Run> {
  const line = { baudRate: baud, parity: "even" as const, dataBits: 8 as const, stopBits: 1 as const };
  const pty = await startPtyPair();
  const sim = await startSimulator({
    tickMs: 0,
    meters: Array.from({ length: METERS }, (_, i) => ({ unitId: i + 1, profile: "sdm630" })),
    rtu: { path: pty.slavePath, ...line, emulateLineTiming: emulate, turnaroundMs: TURNAROUND_MS },
  });
  const port = new ModbusSerialPort({
    path: pty.masterPath,
    ...line,
    timeoutMs: 1_000,
    interFrameGapMs: 0,
    logger: silentLogger(),
  });
  let readings = 0;
  let counting = false;
  const scheduler = new BusScheduler({
    busId: "bench",
    port,
    clock: systemClock,
    // A short interval keeps every meter due: the bus is saturated, polled strictly in turn.
    meters: Array.from({ length: METERS }, (_, i) => ({
      id: `m${i + 1}`,
      unitId: i + 1,
      pollIntervalMs: 10,
      requests: PLAN,
    })),
    onReading: (reading) => {
      if (counting && reading.errors === undefined) readings++;
    },
    logger: silentLogger(),
  });
  scheduler.start();
  // Warm-up: one full round over the bus (connection opened, JIT warm).
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  counting = true;
  const startMs = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1_000));
  const elapsedMs = performance.now() - startMs;
  counting = false;
  await scheduler.stop();
  await port.close();
  await sim.close();
  await pty.close();
  const meterMs = PLAN.reduce((sum, request) => sum + readTransactionMs(line, request.count, TURNAROUND_MS), 0);
  const failed = scheduler.stats().failedRequests;
  if (failed > 0) console.log(`  (${failed} failed requests during the run)`);
  return {
    baud,
    emulate,
    metersPerSecond: readings / (elapsedMs / 1_000),
    theoreticalMetersPerSecond: 1_000 / meterMs,
  };
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

const requestsPerMeter = PLAN.length;
// The fewest reads the profile's limits allow ignoring gaps: registers spanned ÷ maxRegistersPerRequest.
const spannedRegisters = PLAN.reduce((sum, r) => sum + r.count, 0);
console.log(
  `SDM630 plan: ${requestsPerMeter} requests per meter (${PLAN.map((r) => `${r.fn} ${r.address}+${r.count}`).join(", ")}); ` +
    `maxRegistersPerRequest ${PROFILE.maxRegistersPerRequest}, maxGap ${PROFILE.maxGap}, ${spannedRegisters} registers read`,
);

const results: Run[] = [];
for (const baud of [9_600, 38_400]) {
  const emulated = await run(baud, true, baud === 9_600 ? 12 : 8);
  results.push(emulated);
  const software = await run(baud, false, 3);
  const line = { baudRate: baud, parity: "even" as const, dataBits: 8 as const, stopBits: 1 as const };
  console.log(
    `${baud} baud 8E1, turnaround ${TURNAROUND_MS} ms, t3.5 ${round(t35Ms(line))} ms: ` +
      `${round(emulated.metersPerSecond, 2)} meters/s measured, ${round(emulated.theoreticalMetersPerSecond, 2)} theoretical ` +
      `(ratio ${round(emulated.metersPerSecond / emulated.theoreticalMetersPerSecond)}); ` +
      `without line emulation ${round(software.metersPerSecond, 1)} meters/s (software cost ${round(1_000 / software.metersPerSecond, 2)} ms per meter incl. turnaround)`,
  );
}
const at = (baud: number) => results.find((r) => r.baud === baud);
const ratioOf = (r: Run | undefined) =>
  r === undefined ? null : round(r.metersPerSecond / r.theoreticalMetersPerSecond);
console.log(
  JSON.stringify({
    bench: "modbus-bus",
    ratio9600: ratioOf(at(9_600)),
    ratio38400: ratioOf(at(38_400)),
    metersPerSecond9600: round(at(9_600)?.metersPerSecond ?? Number.NaN, 2),
    metersPerSecond38400: round(at(38_400)?.metersPerSecond ?? Number.NaN, 2),
    requestsPerMeter,
  }),
);
process.exit(0);
