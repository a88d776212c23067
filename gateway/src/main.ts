import { existsSync } from "node:fs";
import path from "node:path";
import { planReads } from "@edgemeter/hardware/decoding";
import { describeError, EdgemeterError } from "@edgemeter/shared/core";
import type { Logger } from "pino";
import { SyncedClock, TIMESYNCD_SYNCED_FILE } from "./clock/syncedClock.js";
import type { BusConfig, GatewayConfig } from "./config/schema.js";
import { type DetectedEvent, FAULT_PRESETS, FaultDetector, type FaultThresholds } from "./faults/faultDetector.js";
import { Forwarder } from "./forwarder/forwarder.js";
import { createLogger } from "./logging/logger.js";
import { BusScheduler, type PolledMeter } from "./modbus/busScheduler.js";
import type { ModbusPort } from "./modbus/modbusPort.js";
import { ModbusSerialPort } from "./modbus/modbusSerialPort.js";
import { AppendBuffer } from "./outbox/appendBuffer.js";
import type { Outbox } from "./outbox/outbox.js";
import { SqliteOutbox } from "./outbox/sqliteOutbox.js";
import { LiveGatewayState } from "./status/liveGatewayState.js";
import type { StatusServer } from "./status/statusServer.js";
import { startPeriodicGc } from "./systemd/periodicGc.js";
import { SdNotifier } from "./systemd/sdNotify.js";
import { type Clock, systemClock } from "./time/clock.js";
import { AwsIotUplink } from "./uplink/awsIotUplink.js";
import { MqttUplink } from "./uplink/mqttUplink.js";
import { outboxStatusFacts } from "./uplink/statusReport.js";
import type { Uplink } from "./uplink/uplink.js";
import { GATEWAY_VERSION } from "./version.js";

export const OUTBOX_FILE_NAME = "outbox.sqlite";

export interface GatewayOptions {
  /** Defaults to a pino logger on stdout at config.log.level. */
  logger?: Logger;
  clock?: Clock;
  /** How long stop() lets in-flight publishes finish (default 2000 ms). */
  stopDeadlineMs?: number;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly outbox: Outbox;
  readonly uplink: Uplink;
  readonly forwarder: Forwarder;
  readonly schedulers: ReadonlyMap<string, BusScheduler>;
  /** What the status page shows; fault events are recorded here (`recordFaultEvent`). */
  readonly status: LiveGatewayState;
  /** The status page's `http://host:port` once started, undefined without a `status:` section. */
  statusUrl(): string | undefined;
  /** Starts the uplink, the forwarder and every bus. */
  start(): Promise<void>;
  /** Stops polling, lets in-flight publishes finish within the deadline, closes the database. Idempotent. */
  stop(): Promise<void>;
  /** `gateway: <id> polling N meters on M buses` */
  summary(): string;
}

/**
 * The composition root (CONVENTIONS §4): the only place that picks adapters and wires them.
 * Data path: bus schedulers → outbox (SQLite, written first) → forwarder → uplink.
 * Constructing does no I/O except opening the outbox, so a bad data dir fails before
 * anything is polled.
 */
export function createGateway(config: GatewayConfig, options: GatewayOptions = {}): Gateway {
  const logger = options.logger ?? createLogger(config.log.level);
  const baseClock = options.clock ?? systemClock;
  const stopDeadlineMs = options.stopDeadlineMs ?? 2_000;

  const outbox = new SqliteOutbox({
    file: path.join(config.dataDir, OUTBOX_FILE_NAME),
    capBytes: Math.round(config.outbox.capMb * 1024 * 1024),
  });
  // Durability (issue 4): the clock knows when NTP has synced and re-stamps what was read before.
  const clockLogger = logger.child({ component: "clock" });
  const syncedClock = new SyncedClock({
    syncedFile:
      config.clock.syncedFile === "auto"
        ? existsSync(path.dirname(TIMESYNCD_SYNCED_FILE))
          ? TIMESYNCD_SYNCED_FILE
          : null
        : config.clock.syncedFile,
    pollMs: config.clock.syncCheckMs,
    base: baseClock,
    onSync: (wallMinusMonotonicMs) => {
      appendBuffer.flush();
      const restamped = outbox.restamp(syncedClock.bootId, wallMinusMonotonicMs);
      clockLogger.info({ restamped }, "re-stamped readings taken before the clock was synchronised");
      forwarder.wake();
    },
    logger: clockLogger,
  });
  const clock: Clock = syncedClock;
  const faultPreset = FAULT_PRESETS[config.faults.preset];
  // Resolved once per meter: the detector asks for every reading.
  const thresholdsByMeter = new Map<string, FaultThresholds>();
  const faultDetector = new FaultDetector((meterId) => {
    let thresholds = thresholdsByMeter.get(meterId);
    if (thresholds === undefined) {
      thresholds = {
        ...faultPreset,
        ...definedOnly(config.faults.thresholds),
        ...definedOnly(config.faults.meters[meterId] ?? {}),
      };
      thresholdsByMeter.set(meterId, thresholds);
    }
    return thresholds;
  });
  const startMonotonicMs = baseClock.monotonicMs();
  const appendBuffer = new AppendBuffer({
    outbox,
    flushMs: config.outbox.appendFlushMs,
    unsynced: {
      bootId: syncedClock.bootId,
      monotonicMsOf: (reading) => syncedClock.bootMonotonicMsOfWall(Date.parse(reading.ts)),
    },
    logger: logger.child({ component: "outbox" }),
  });
  const { uplink: uplinkConfig } = config;
  const tls =
    uplinkConfig.caFile !== undefined && uplinkConfig.certFile !== undefined && uplinkConfig.keyFile !== undefined
      ? { caFile: uplinkConfig.caFile, certFile: uplinkConfig.certFile, keyFile: uplinkConfig.keyFile }
      : undefined;
  // The retained status carries the buffer and the disk-cap counts (issue 4), re-published when those change.
  const { statusFacts, diskCapCounts } = outboxStatusFacts(outbox);
  const uplinkLogger = logger.child({ component: "uplink", kind: uplinkConfig.kind });
  const uplink: Uplink =
    uplinkConfig.kind === "awsIot" && tls !== undefined
      ? new AwsIotUplink({
          gatewayId: config.gatewayId,
          host: new URL(uplinkConfig.url).hostname,
          port: Number(new URL(uplinkConfig.url).port || 8883),
          clientId: uplinkConfig.clientId,
          keepaliveS: uplinkConfig.keepaliveS,
          reconnectPeriodMs: uplinkConfig.reconnectPeriodMs,
          reconnectCapMs: uplinkConfig.reconnectCapMs,
          stablePeriodMs: uplinkConfig.stablePeriodMs,
          tls,
          version: GATEWAY_VERSION,
          statusFacts,
          diskCapCounts,
          logger: uplinkLogger,
          clock,
        })
      : new MqttUplink({
          gatewayId: config.gatewayId,
          url: uplinkConfig.url,
          protocolVersion: uplinkConfig.protocolVersion,
          clientId: uplinkConfig.clientId,
          keepaliveS: uplinkConfig.keepaliveS,
          reconnectPeriodMs: uplinkConfig.reconnectPeriodMs,
          reconnectCapMs: uplinkConfig.reconnectCapMs,
          stablePeriodMs: uplinkConfig.stablePeriodMs,
          ...(tls === undefined ? {} : { tls }),
          version: GATEWAY_VERSION,
          statusFacts,
          diskCapCounts,
          logger: uplinkLogger,
          clock,
        });
  const forwarder = new Forwarder({
    gatewayId: config.gatewayId,
    outbox,
    uplink,
    maxBatchReadings: config.forwarder.maxBatchReadings,
    maxBatchBytes: config.forwarder.maxBatchBytes,
    idleFlushMs: config.forwarder.idleFlushMs,
    ackTimeoutMs: config.forwarder.ackTimeoutMs,
    windowBatches: config.forwarder.windowBatches,
    ackFlushMs: config.forwarder.ackFlushMs,
    // Unsynced readings wait for the sync that re-stamps them, but not forever.
    hold: (reading) =>
      reading.clock === "unsynced" &&
      !syncedClock.isSynced() &&
      baseClock.monotonicMs() - startMonotonicMs < config.clock.holdUnsyncedMaxMs,
    clock,
    logger: logger.child({ component: "forwarder" }),
  });

  const ports: ModbusPort[] = [];
  const schedulers = new Map<string, BusScheduler>();
  const status = new LiveGatewayState({
    gatewayId: config.gatewayId,
    version: GATEWAY_VERSION,
    clock,
    meters: config.buses.flatMap((bus) =>
      bus.meters.map((m) => ({ id: m.id, busId: bus.id, pollIntervalMs: m.pollIntervalMs })),
    ),
    outbox,
    uplinkState: () => uplink.state,
    uplinkProblem: () => uplink.status?.(),
    forwarderStats: () => forwarder.stats(),
    busStats: () => [...schedulers].map(([id, scheduler]) => ({ id, ...scheduler.stats() })),
    meterPollStats: () => [...schedulers.values()].flatMap((scheduler) => scheduler.meterStats()),
    outboxStats: () => outbox.stats(),
    ...(tls === undefined ? {} : { certFile: tls.certFile }),
    dataDir: config.dataDir,
    // The charts are the status page's: without one configured, no chart history is kept.
    chartHistory: config.status !== undefined,
  });
  // One plan per profile, not per meter (32 meters of one model are common). The profiles
  // were loaded and checked with the configuration (config.profiles).
  const readPlans = new Map<string, ReturnType<typeof planReads>>();
  const readPlanOf = (ref: string) => {
    let plan = readPlans.get(ref);
    if (plan === undefined) {
      const profile = config.profiles[ref];
      if (profile === undefined) {
        throw new EdgemeterError("config.invalid", `meter profile ${ref} was not loaded with the configuration`);
      }
      plan = planReads(profile);
      readPlans.set(ref, plan);
    }
    return plan;
  };
  for (const bus of config.buses) {
    const busLogger = logger.child({ component: "modbus", bus: bus.id });
    const port = createModbusPort(bus, busLogger);
    ports.push(port);
    const meters: PolledMeter[] = bus.meters.map((meter) => ({
      id: meter.id,
      unitId: meter.unitId,
      pollIntervalMs: meter.pollIntervalMs,
      requests: readPlanOf(meter.profile),
    }));
    schedulers.set(
      bus.id,
      new BusScheduler({
        busId: bus.id,
        port,
        meters,
        clock,
        // The outbox first, before anything else: its append listener then wakes the forwarder.
        onReading: (reading) => {
          appendBuffer.add(reading);
          status.recordReading(reading);
          recordFaults(faultDetector.observe(reading));
        },
        logger: busLogger,
        retries: bus.retries,
        offlineAfterPolls: bus.offlineAfterPolls,
        maxReprobeIntervalMs: bus.maxReprobeIntervalMs,
      }),
    );
  }

  // The status page is loaded (fastify, prom-client and their modules) only when configured:
  // a gateway without one does not carry it in RSS (issue 4 footprint, ~10 MB).
  let statusServer: StatusServer | undefined;
  async function startStatusServer(statusConfig: NonNullable<GatewayConfig["status"]>): Promise<void> {
    const { StatusServer } = await import("./status/statusServer.js");
    if (stopping !== undefined) return; // stopped while the module loaded
    statusServer = new StatusServer({
      host: statusConfig.host,
      port: statusConfig.port,
      passwordHashFile: statusConfig.passwordHashFile,
      sessionTtlMs: statusConfig.sessionTtlMinutes * 60_000,
      state: status,
      clock,
      logger: logger.child({ component: "status" }),
    });
    await statusServer.start();
  }

  // Fault events are rare and urgent: stored at once (not through the append buffer), sent first.
  const faultLogger = logger.child({ component: "faults" });
  function recordFaults(events: readonly DetectedEvent[]): void {
    if (events.length === 0) return;
    try {
      outbox.appendEvents(events);
    } catch (error) {
      faultLogger.error({ err: describeError(error), events: events.length }, "could not store fault events");
    }
    for (const event of events) {
      faultLogger.warn(
        { meterId: event.meterId, kind: event.kind, state: event.state, phase: event.phase, value: event.value },
        `fault ${event.kind} ${event.state}`,
      );
      status.recordFaultEvent({
        type: event.state === "start" ? "start" : "end",
        eventId: event.eventId,
        meterId: event.meterId,
        kind: event.kind,
        phase: event.phase,
        value: event.value,
        threshold: event.threshold,
        ts: event.ts,
      });
    }
  }
  let faultTimer: NodeJS.Timeout | undefined;
  let stopPeriodicGc: (() => void) | undefined;
  // Type=notify with a watchdog when systemd started us (hardware/systemd/edgemeter-gateway.service).
  const sdNotifier = new SdNotifier({ logger: logger.child({ component: "systemd" }) });

  const meterCount = config.buses.reduce((n, bus) => n + bus.meters.length, 0);
  let started = false;
  let stopping: Promise<void> | undefined;

  return {
    config,
    outbox,
    uplink,
    forwarder,
    schedulers,
    status,
    statusUrl: () => statusServer?.url(),
    summary: () => `gateway: ${config.gatewayId} polling ${meterCount} meters on ${config.buses.length} buses`,
    async start() {
      if (started) return;
      started = true;
      logger.info(
        { gatewayId: config.gatewayId, version: GATEWAY_VERSION, buffered: outbox.depth(), dataDir: config.dataDir },
        "gateway starting",
      );
      if (tls === undefined)
        logger.warn({ url: uplinkConfig.url }, "uplink without TLS: for tests and local demos only");
      syncedClock.start();
      await uplink.connect();
      forwarder.start();
      for (const scheduler of schedulers.values()) scheduler.start();
      for (const bus of config.buses) for (const meter of bus.meters) faultDetector.register(meter.id, clock.nowMs());
      faultTimer = setInterval(() => recordFaults(faultDetector.tick(clock.nowMs())), 1_000);
      faultTimer.unref();
      // Keeps the heap near its live size (issue 4 footprint); only under --expose-gc (production).
      stopPeriodicGc = startPeriodicGc({ logger });
      sdNotifier.ready(`${config.gatewayId}: polling ${meterCount} meters, ${outbox.depth()} readings buffered`);
      // After the data path: a page that cannot start must not stop the readings (logged, not fatal).
      if (config.status !== undefined) {
        await startStatusServer(config.status).catch((error: unknown) => {
          logger.error({ err: describeError(error) }, "status page not started");
        });
      }
    },
    stop() {
      stopping ??= (async () => {
        logger.info("gateway stopping");
        sdNotifier.stopping();
        await statusServer?.stop();
        // Polling first: no new readings while the rest shuts down.
        await Promise.all([...schedulers.values()].map((s) => s.stop()));
        clearInterval(faultTimer);
        stopPeriodicGc?.();
        syncedClock.stop();
        appendBuffer.flush();
        await forwarder.stop(stopDeadlineMs);
        await uplink.close(Math.min(500, stopDeadlineMs));
        await Promise.all(
          ports.map((p) => p.close().catch((e: unknown) => logger.debug({ err: describeError(e) }, "port close"))),
        );
        outbox.close();
        logger.info("gateway stopped");
      })();
      return stopping;
    },
  };
}

function createModbusPort(bus: BusConfig, logger: Logger): ModbusPort {
  switch (bus.transport) {
    case "tcp":
      return new ModbusSerialPort({
        host: bus.host,
        port: bus.port,
        framing: bus.framing,
        timeoutMs: bus.timeoutMs,
        interFrameGapMs: bus.interFrameGapMs,
        logger,
      });
    case "rtu":
      return new ModbusSerialPort({
        path: bus.path,
        baudRate: bus.baudRate,
        parity: bus.parity,
        dataBits: bus.dataBits,
        stopBits: bus.stopBits,
        timeoutMs: bus.timeoutMs,
        interFrameGapMs: bus.interFrameGapMs,
        logger,
      });
  }
}

/** Overrides from the config without their absent keys (exactOptionalPropertyTypes). */
function definedOnly<T extends object>(overrides: T): { [K in keyof T]-?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]-?: Exclude<T[K], undefined>;
  };
}
