import net from "node:net";
import { EdgemeterError, type MeasurementName } from "@edgemeter/shared";
import { ServerTCP } from "modbus-serial";
import { type Logger, pino } from "pino";
import { loadProfile } from "../profiles/loadProfile.js";
import type { MeterProfile, RegisterFn } from "../profiles/profileSchema.js";
import { HOUSEHOLD_MEAN_POWER_W } from "./loadShape.js";
import {
  type MeterFault,
  RtuServer,
  type RtuServerOptions,
  type RtuServerStats,
  type ServeOutcome,
} from "./rtuServer.js";
import type { PowerQualityScenario } from "./scenarios.js";
import { SimulatedMeter } from "./simulatedMeter.js";

export interface SimulatedMeterOptions {
  /** Modbus unit id (1–247) this meter answers to. */
  unitId: number;
  /** Profile id (`sdm630`), path of a profile YAML, or a loaded profile. */
  profile: string | MeterProfile;
  /** PRNG seed; defaults to the unit id, so meters differ and runs repeat. */
  seed?: number;
  /** Week-average active power (W); defaults to the mean of the households the load shape comes from. */
  baseLoadW?: number;
  /**
   * Import energy register at start (kWh). Default: a few thousand kWh derived from the seed,
   * as on a meter that has been in service for years (a register at 0 hides decoding bugs).
   */
  startEnergyKwh?: number;
  /**
   * Answer exception 2 (Illegal Data Address) to any read that spans a register the profile
   * does not list, as some meters do; the gateway must split its merged reads. Default false.
   */
  refuseGapReads?: boolean;
}

export interface SimulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 picks a free one (see SimulatorHandle.port). Leave out to serve RTU only. */
  port?: number;
  /** Also (or only) serve Modbus RTU on this serial line, e.g. one end of a socat pty pair. */
  rtu?: RtuServerOptions;
  meters: SimulatedMeterOptions[];
  /** State update period (ms), default 1000; 0 disables the timer (call tick() yourself). */
  tickMs?: number;
  /** Epoch ms; default Date.now. Tests inject one to make time (and energy) exact. */
  clock?: () => number;
  /** Wall clock of the simulated households relative to UTC (min), for the daily load shape; default 0. */
  utcOffsetMinutes?: number;
  /** Snapshots kept per meter for history(); default 3600. */
  historyLimit?: number;
  logger?: Logger;
}

export interface SimulatorSnapshot {
  atMs: number;
  values: Record<MeasurementName, number>;
}

export interface SimulatorHandle {
  /** The TCP port actually listened on (0 when serving RTU only). */
  port: number;
  /** Makes `unitId` misbehave until cleared with `undefined` (see MeterFault). */
  setFault(unitId: number, fault: MeterFault | undefined): void;
  /** Plays voltage/frequency events on `unitId` (replaces earlier ones); times are clock ms. */
  setScenarios(unitId: number, scenarios: readonly PowerQualityScenario[]): void;
  /** RTU line counters (zeros without `rtu`). */
  rtuStats(): RtuServerStats;
  close(): Promise<void>;
  /** The state served right now by `unitId`. Throws EdgemeterError("config.unknownUnit") for a unit not simulated. */
  snapshot(unitId: number): SimulatorSnapshot;
  /** Served states, oldest first, newest last; a bounded ring (historyLimit). `fromMs`: served from then on. */
  history(unitId: number): { fromMs: number; values: Record<MeasurementName, number> }[];
  /** Updates every meter from the clock now (what the timer does every tickMs). */
  tick(): void;
}

/** An Error the modbus-serial server turns into a Modbus exception response. */
function modbusException(code: number): Error & { modbusErrorCode: number } {
  return Object.assign(new Error(`Modbus exception ${code}`), { modbusErrorCode: code });
}

/** Asks the kernel for a free port on `host` and releases it (ServerTCP reads port 0 as "default 502"). */
function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("no port assigned"));
      });
    });
  });
}

function listen(vector: ConstructorParameters<typeof ServerTCP>[0], host: string, port: number): Promise<ServerTCP> {
  return new Promise((resolve, reject) => {
    const server = new ServerTCP(vector, { host, port, unitID: 255 });
    server.once("initialized", () => resolve(server));
    server.once("serverError", (error: Error) => reject(error));
  });
}

function validateOptions(options: SimulatorOptions): void {
  const problems: string[] = [];
  if (options.port === undefined && options.rtu === undefined)
    problems.push("port: give a TCP port, an rtu line, or both");
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65_535)) {
    problems.push(`port: must be an integer 0-65535, got ${options.port}`);
  }
  if (options.meters.length === 0) problems.push("meters: must list at least one meter");
  const seen = new Set<number>();
  options.meters.forEach((meter, i) => {
    // 0 is broadcast and 248-255 are reserved (Modbus over serial line v1.02 §2.2).
    if (!Number.isInteger(meter.unitId) || meter.unitId < 1 || meter.unitId > 247) {
      problems.push(`meters.${i}.unitId: must be an integer 1-247, got ${meter.unitId}`);
    } else if (seen.has(meter.unitId)) problems.push(`meters.${i}.unitId: unit ${meter.unitId} is already simulated`);
    seen.add(meter.unitId);
    if (meter.baseLoadW !== undefined && !(meter.baseLoadW >= 0)) problems.push(`meters.${i}.baseLoadW: must be ≥ 0`);
    if (meter.startEnergyKwh !== undefined && !(meter.startEnergyKwh >= 0)) {
      problems.push(`meters.${i}.startEnergyKwh: must be ≥ 0`);
    }
  });
  if (options.tickMs !== undefined && !(Number.isInteger(options.tickMs) && options.tickMs >= 0)) {
    problems.push(`tickMs: must be an integer ≥ 0, got ${options.tickMs}`);
  }
  if (problems.length > 0) {
    throw new EdgemeterError("config.invalid", problems.map((p) => `simulator: ${p}`).join("\n"));
  }
}

/**
 * Serves simulated meters over Modbus TCP and/or Modbus RTU on a serial line (one meter
 * per unit id; see rtuServer.ts for line-timing emulation and faults). Every
 * answer comes from the meter's current snapshot, which moves on every tick; unknown unit
 * ids get no answer at all (like an RS-485 bus through a gateway), unknown registers
 * exception 2.
 */
export async function startSimulator(options: SimulatorOptions): Promise<SimulatorHandle> {
  validateOptions(options);
  const host = options.host ?? "127.0.0.1";
  const clock = options.clock ?? Date.now;
  const log = (options.logger ?? pino({ level: "silent" })).child({ component: "simulator" });
  const startMs = clock();
  const meters = new Map<number, SimulatedMeter>();
  for (const meter of options.meters) {
    const profile = typeof meter.profile === "string" ? loadProfile(meter.profile) : meter.profile;
    const seed = meter.seed ?? meter.unitId;
    const modelOptions = {
      seed,
      baseLoadW: meter.baseLoadW ?? HOUSEHOLD_MEAN_POWER_W,
      startEnergyKwh: meter.startEnergyKwh ?? defaultStartEnergyKwh(seed),
      utcOffsetMinutes: options.utcOffsetMinutes ?? 0,
    };
    meters.set(
      meter.unitId,
      new SimulatedMeter(meter.unitId, profile, modelOptions, startMs, options.historyLimit ?? 3600, {
        refuseGapReads: meter.refuseGapReads ?? false,
      }),
    );
  }
  const faults = new Map<number, MeterFault>();

  const outcomeOf = (unitId: number, fn: RegisterFn, address: number, count: number): ServeOutcome => {
    const meter = meters.get(unitId);
    if (meter === undefined) return { kind: "silent" };
    const result = meter.read(fn, address, count);
    return result.ok
      ? { kind: "words", words: result.words }
      : { kind: "exception", exceptionCode: result.exceptionCode };
  };

  const serve = (
    fn: RegisterFn,
    address: number,
    count: number,
    unitId: number,
    reply: (error: Error | null, words: number[]) => void,
  ) => {
    const outcome = outcomeOf(unitId, fn, address, count);
    const fault = faults.get(unitId);
    if (outcome.kind === "silent") {
      // Not calling back means modbus-serial sends nothing: the client times out, as on a bus.
      log.debug({ unitId, fn, address, count }, "request for an unknown unit id: no answer");
      return;
    }
    // CRC errors and garbage cannot happen on TCP (no CRC, framed by MBAP): they are silence here.
    if (fault?.kind === "noAnswer" || fault?.kind === "crcError" || fault?.kind === "garbage") return;
    const answer = () => {
      // modbus-serial indexes the values array even on error: hand it an empty one.
      if (fault?.kind === "exception") reply(modbusException(fault.exceptionCode), []);
      else if (outcome.kind === "words") reply(null, outcome.words);
      else reply(modbusException(outcome.exceptionCode), []);
    };
    if (fault?.kind === "slow") setTimeout(answer, fault.extraDelayMs);
    else answer();
  };

  const vector = {
    getInputRegister: (address: number, unitId: number, cb: (error: Error | null, word: number) => void) =>
      serve("input", address, 1, unitId, (error, words) => cb(error, words[0] ?? 0)),
    getHoldingRegister: (address: number, unitId: number, cb: (error: Error | null, word: number) => void) =>
      serve("holding", address, 1, unitId, (error, words) => cb(error, words[0] ?? 0)),
    getMultipleInputRegisters: (
      address: number,
      count: number,
      unitId: number,
      cb: (error: Error | null, words: number[]) => void,
    ) => serve("input", address, count, unitId, cb),
    getMultipleHoldingRegisters: (
      address: number,
      count: number,
      unitId: number,
      cb: (error: Error | null, words: number[]) => void,
    ) => serve("holding", address, count, unitId, cb),
  };

  let server: ServerTCP | undefined;
  let listeningPort = options.port ?? 0;
  // With port 0 a free port is picked first; another process may grab it in between, so retry a few times.
  for (let attempt = 1; options.port !== undefined && server === undefined; attempt++) {
    listeningPort = options.port === 0 ? await freePortOn(host) : options.port;
    try {
      server = await listen(vector, host, listeningPort);
      log.info({ host, port: listeningPort, units: [...meters.keys()] }, "simulator listening");
    } catch (error) {
      const inUse = (error as NodeJS.ErrnoException).code === "EADDRINUSE";
      if (options.port !== 0 || !inUse || attempt >= 5) {
        throw new EdgemeterError(
          "config.invalid",
          `simulator: cannot listen on ${host}:${listeningPort}: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
    }
  }
  server?.on("socketError", (error: Error | null) => log.debug({ err: error }, "client socket error"));
  server?.on("error", (error: Error | null) => log.warn({ err: error }, "server error"));

  let rtu: RtuServer | undefined;
  if (options.rtu !== undefined) {
    rtu = new RtuServer(options.rtu, outcomeOf, (unitId) => faults.get(unitId), log.child({ line: options.rtu.path }));
    try {
      await rtu.open();
    } catch (error) {
      await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
      throw error;
    }
  }

  const tick = () => {
    const nowMs = clock();
    for (const meter of meters.values()) meter.tick(nowMs);
  };
  const tickMs = options.tickMs ?? 1000;
  const timer = tickMs > 0 ? setInterval(tick, tickMs) : undefined;
  timer?.unref();

  const meterOf = (unitId: number): SimulatedMeter => {
    const meter = meters.get(unitId);
    if (meter === undefined) {
      throw new EdgemeterError(
        "config.unknownUnit",
        `simulator: unit ${unitId} is not simulated (units: ${[...meters.keys()].join(", ")})`,
      );
    }
    return meter;
  };

  let closed: Promise<void> | undefined;
  const running = server;
  return {
    port: running === undefined ? 0 : listeningPort,
    tick,
    setFault: (unitId, fault) => {
      meterOf(unitId);
      if (fault === undefined) faults.delete(unitId);
      else faults.set(unitId, fault);
    },
    setScenarios: (unitId, scenarios) => meterOf(unitId).setScenarios(scenarios),
    rtuStats: () => rtu?.stats() ?? { requests: 0, badRequests: 0, answers: 0 },
    snapshot: (unitId) => {
      const { atMs, values } = meterOf(unitId).snapshot();
      return { atMs, values: { ...values } };
    },
    history: (unitId) =>
      meterOf(unitId)
        .history()
        .map(({ atMs, values }) => ({ fromMs: atMs, values: { ...values } })),
    close: () => {
      closed ??= (async () => {
        if (timer !== undefined) clearInterval(timer);
        await rtu?.close();
        await new Promise<void>((resolve) => (running === undefined ? resolve() : running.close(() => resolve())));
        log.info("simulator closed");
      })();
      return closed;
    },
  };
}

/** 1,000–21,000 kWh, spread by the seed (Knuth's multiplicative hash), in whole 0.1 kWh. */
function defaultStartEnergyKwh(seed: number): number {
  return 1_000 + ((Math.imul(seed >>> 0, 2654435761) >>> 0) % 200_000) / 10;
}
