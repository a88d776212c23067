/**
 * `npm run bench -- uplink` (issue 4). Figures, not pass/fail:
 * 1. Drain: 200,000 readings buffered in a real SQLite outbox, forwarded by the gateway's
 *    Forwarder + MqttUplink to a TLS Mosquitto (mTLS, MQTT 5, QoS 1): readings per second,
 *    and the ratio to a bare mqtt.js QoS 1 publisher sending the same payload bytes with the
 *    same window of messages in flight, in the same run. Target ratio >= 0.8. BENCH_DRAIN_ROUNDS
 *    rounds (default 3, the order of bare and drain alternating), each on a fresh copy of the
 *    outbox; the figure is the median round.
 * 2. Footprint: a gateway process polling 32 simulated meters every second (BENCH_FOOTPRINT_S,
 *    default 600 s = the issue's 10 minutes; shorten it for iterations): peak RSS (VmHWM,
 *    target <= 80 MB) and CPU ms per 1,000 readings. BENCH_FOOTPRINT_STATUS=1 adds the
 *    technicians' status page to the gateway's configuration.
 * Both run with the Node.js options production runs the gateway with (GATEWAY_NODE_OPTIONS, the
 * systemd unit's NODE_OPTIONS): this process re-executes itself with them for the drain.
 * Last line: {"bench":"uplink","drainRatio":…,"readingsPerSecond":…,"peakRssMb":…,"cpuMsPer1000Readings":…}
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  type BatchFrame,
  type BatchLimits,
  Forwarder,
  GATEWAY_NODE_OPTIONS,
  hashPassword,
  MqttUplink,
  type NewReading,
  type RawOutboxBatch,
  type SeqRange,
  SqliteOutbox,
  silentLogger,
  telemetryFrame,
} from "@edgemeter/gateway";
import { startSimulator } from "@edgemeter/hardware";
import { type Reading, topicFor } from "@edgemeter/shared";
import { findBinary, tempDir, waitFor } from "@edgemeter/shared/testing";
import Database from "better-sqlite3";
import mqtt from "mqtt";
import { type RunningMosquitto, startMosquitto } from "../support/mosquitto.js";
import { makeTestPki, readTlsCredentials, type TlsFiles } from "../support/pki.js";
import { BIN, startNode } from "../support/processes.js";
import { writeGatewayConfig } from "../support/stack.js";

const READINGS = Number(process.env.BENCH_DRAIN_READINGS ?? 200_000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_DRAIN_ROUNDS ?? 3));
const WINDOW = 4;
const BATCH_READINGS = 500;
/** As the forwarder computes them: maxBatchBytes 120,000 less its 256-byte envelope reserve. */
const LIMITS: BatchLimits = { maxReadings: BATCH_READINGS, maxBytes: 120_000 - 256 };
const FOOTPRINT_S = Number(process.env.BENCH_FOOTPRINT_S ?? 600);
const FOOTPRINT_STATUS = process.env.BENCH_FOOTPRINT_STATUS === "1";
const FOOTPRINT_METERS = 32;
const GATEWAY = "gw-bench";

function reading(i: number): NewReading {
  return {
    meterId: `meter-${i % 32}`,
    ts: new Date(Date.UTC(2026, 0, 1) + Math.floor(i / 32) * 1_000).toISOString(),
    clock: "synced",
    values: {
      voltageL1V: 230.1 + (i % 7) / 10,
      voltageL2V: 229.8,
      voltageL3V: 231.2,
      currentL1A: 5.25,
      currentL2A: 4.5,
      currentL3A: 6.75,
      activePowerW: 3_450.5,
      frequencyHz: 50.01,
      importEnergyKwh: 1_000 + i / 1_000,
      exportEnergyKwh: 12.5,
    },
  };
}

/** Phase timings: the outbox's share of the drain, measured around its calls. */
class TimedOutbox extends SqliteOutbox {
  readonly ms = { select: 0, ack: 0, purge: 0, events: 0 };
  override nextRawBatchAfter(
    afterSeq: number,
    limits: BatchLimits,
    hold?: (reading: Reading) => boolean,
    frame?: BatchFrame,
  ): RawOutboxBatch {
    const start = performance.now();
    try {
      return super.nextRawBatchAfter(afterSeq, limits, hold, frame);
    } finally {
      this.ms.select += performance.now() - start;
    }
  }
  override ackRanges(ranges: readonly SeqRange[]): void {
    const start = performance.now();
    try {
      super.ackRanges(ranges);
    } finally {
      this.ms.ack += performance.now() - start;
    }
  }
  override purgeDelivered(maxReadings: number): number {
    const start = performance.now();
    try {
      return super.purgeDelivered(maxReadings);
    } finally {
      this.ms.purge += performance.now() - start;
    }
  }
  override nextEvents(limit: number) {
    const start = performance.now();
    try {
      return super.nextEvents(limit);
    } finally {
      this.ms.events += performance.now() - start;
    }
  }
}

/**
 * The cloud's stand-in: a subscriber, without which Mosquitto answers PUBACK 16 "no matching
 * subscribers" (which the gateway rightly does not count as delivered). A process of its own
 * (mosquitto_sub, QoS 0), as the cloud ingest is, so that receiving 60 MB does not load the
 * event loop that is measured; mqtt.js in this process only where mosquitto_sub is missing.
 */
async function startSink(
  broker: RunningMosquitto,
  tls: TlsFiles,
  gatewayTls: TlsFiles,
): Promise<{ kind: string; stop(): Promise<void> }> {
  const topic = "edgemeter/v1/gw/+/telemetry";
  const binary = findBinary("mosquitto_sub", ["/usr/bin/mosquitto_sub", "/usr/local/bin/mosquitto_sub"]);
  if (binary === null) {
    const client = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: "cloud-ingest",
      ...readTlsCredentials(tls),
    });
    await client.subscribeAsync(topic, { qos: 0 });
    return { kind: "mqtt.js in the bench process", stop: () => client.endAsync(true) };
  }
  // -F %l: print a message's length only (not 60 MB of payloads).
  const args = ["-h", "127.0.0.1", "-p", String(broker.port), "-V", "mqttv5", "-i", "cloud-ingest", "-q", "0"];
  args.push("-t", topic, "--cafile", tls.caFile, "--cert", tls.certFile, "--key", tls.keyFile, "-F", "%l");
  const child: ChildProcess = spawn(binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  let errors = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    errors += chunk.toString();
  });
  await untilSubscribed(broker, gatewayTls, () => `mosquitto_sub: ${errors}`);
  return {
    kind: "mosquitto_sub process",
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Publishes probes until the broker's PUBACK no longer says 16 "no matching subscribers". */
async function untilSubscribed(broker: RunningMosquitto, gatewayTls: TlsFiles, what: () => string): Promise<void> {
  const probe = await mqtt.connectAsync(broker.url, {
    protocolVersion: 5,
    clientId: `${GATEWAY}-probe`,
    ...readTlsCredentials(gatewayTls),
  });
  let reasonCode: number | undefined;
  probe.on("packetreceive", (packet) => {
    if (packet.cmd === "puback") reasonCode = packet.reasonCode ?? 0;
  });
  try {
    await waitFor(
      async () => {
        reasonCode = undefined;
        await probe.publishAsync(topicFor("telemetry", GATEWAY), "probe", { qos: 1 });
        return reasonCode === 0 ? true : undefined;
      },
      "a subscriber",
      15_000,
      100,
    );
  } catch (error) {
    throw new Error(`${String(error)} (${what()})`);
  } finally {
    await probe.endAsync();
  }
}

/** CPU milliseconds (user + system) this process used since `start` (process.cpuUsage()). */
function cpuMsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1_000;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
}

async function main(): Promise<void> {
  const temp = tempDir("bench-uplink");
  const pki = await makeTestPki(temp.dir, { gateways: [GATEWAY], clients: ["cloud-ingest"] });
  const broker = await startMosquitto({ dir: temp.dir, pki });
  const gatewayTls = pki.gateway(GATEWAY);
  const sink = await startSink(broker, pki.client("cloud-ingest"), gatewayTls);
  try {
    // --- 1. drain -----------------------------------------------------------------------
    const masterFile = path.join(temp.dir, "outbox-master.sqlite");
    const master = new SqliteOutbox({ file: masterFile });
    for (let i = 0; i < READINGS; i += 1_000) {
      master.append(Array.from({ length: Math.min(1_000, READINGS - i) }, (_, k) => reading(i + k)));
    }
    // The same payload bytes for the baseline: the batches as the forwarder cuts and frames them.
    const payloads: Buffer[] = [];
    for (let after = -1; ; ) {
      const batch = master.nextRawBatchAfter(
        after,
        LIMITS,
        undefined,
        telemetryFrame(GATEWAY, new Date().toISOString()),
      );
      if (batch.count === 0) break;
      payloads.push(batch.json);
      after = batch.lastSeq;
    }
    master.close(); // the last connection: checkpoints the WAL into the file, which each round copies
    const topic = topicFor("telemetry", GATEWAY);
    const payloadBytes = payloads.reduce((n, p) => n + p.length, 0);

    // Baseline: bare mqtt.js, QoS 1, WINDOW publishes in flight, same bytes, same broker, same TLS.
    async function bareRun(): Promise<{ ms: number; cpuMs: number }> {
      const bare = await mqtt.connectAsync(broker.url, {
        protocolVersion: 5,
        clientId: GATEWAY,
        ...readTlsCredentials(gatewayTls),
      });
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      let next = 0;
      await Promise.all(
        Array.from({ length: WINDOW }, async () => {
          while (next < payloads.length) {
            const payload = payloads[next++] as Buffer;
            await bare.publishAsync(topic, payload, { qos: 1 });
          }
        }),
      );
      const ms = performance.now() - start;
      const cpuMs = cpuMsSince(cpuStart);
      await bare.endAsync();
      return { ms, cpuMs };
    }

    async function drainRun(round: number) {
      const file = path.join(temp.dir, `outbox-${round}.sqlite`);
      copyFileSync(masterFile, file);
      const outbox = new TimedOutbox({ file });
      const uplink = new MqttUplink({
        gatewayId: GATEWAY,
        url: broker.url,
        protocolVersion: 5,
        clientId: GATEWAY,
        keepaliveS: 30,
        reconnectPeriodMs: 500,
        tls: gatewayTls,
        version: "bench",
        statusFacts: () => ({ bufferedReadings: outbox.depth(), oldestUnsentTs: outbox.oldestTs() }),
        logger: silentLogger(),
      });
      const forwarder = new Forwarder({
        gatewayId: GATEWAY,
        outbox,
        uplink,
        maxBatchReadings: BATCH_READINGS,
        maxBatchBytes: 120_000,
        idleFlushMs: 1_000,
        windowBatches: WINDOW,
        logger: silentLogger(),
      });
      await uplink.connect();
      await waitFor(() => (uplink.state === "connected" ? true : undefined), "uplink connected");
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      forwarder.start();
      // Poll the forwarder's counter, not outbox.depth(): a count(*) over 200,000 rows every few
      // milliseconds on the same event loop would slow down what is measured.
      await waitFor(
        () => (forwarder.stats().publishedReadings >= READINGS ? true : undefined),
        "all readings acknowledged",
        600_000,
        5,
      );
      const ms = performance.now() - start;
      const cpuMs = cpuMsSince(cpuStart);
      const inWindow = { ...outbox.ms };
      // Acknowledged readings are recorded as delivered within ackFlushMs (Forwarder), and their
      // rows removed when there is nothing to send: until no row is left in the file.
      await waitFor(
        () => (outbox.depth() === 0 && !outbox.hasDeliveredRows() ? true : undefined),
        "outbox empty",
        600_000,
        20,
      );
      const emptyMs = performance.now() - start;
      await forwarder.stop();
      await uplink.close();
      outbox.close();
      return { ms, cpuMs, emptyMs, inWindow, removeMs: outbox.ms.ack + outbox.ms.purge };
    }

    const rounds: { bareMs: number; drainMs: number; emptyMs: number; ratio: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate the order, so neither side always runs on a warmer (or more loaded) machine.
      let bare: Awaited<ReturnType<typeof bareRun>>;
      let drain: Awaited<ReturnType<typeof drainRun>>;
      if (round % 2 === 0) {
        bare = await bareRun();
        drain = await drainRun(round);
      } else {
        drain = await drainRun(round);
        bare = await bareRun();
      }
      const bareMs = bare.ms;
      const ratio = bareMs / drain.ms;
      rounds.push({ bareMs, drainMs: drain.ms, emptyMs: drain.emptyMs, ratio });
      const phases = Object.entries(drain.inWindow)
        .map(([phase, ms]) => `${phase} ${Math.round(ms)} ms`)
        .join(", ");
      console.log(
        `drain round ${round + 1}/${ROUNDS}: ${READINGS} readings in ${Math.round(drain.ms)} ms ` +
          `(outbox ${phases}; acks and removal in all ${Math.round(drain.removeMs)} ms, empty after ${Math.round(drain.emptyMs)} ms); ` +
          `bare mqtt.js ${Math.round(bareMs)} ms; ratio ${ratio.toFixed(3)}; ` +
          `CPU of this process: drain ${Math.round(drain.cpuMs)} ms, bare ${Math.round(bare.cpuMs)} ms`,
      );
    }
    const mid = rounds.find((r) => r.ratio === median(rounds.map((x) => x.ratio))) ?? (rounds[0] as (typeof rounds)[0]);
    const drainRate = READINGS / (mid.drainMs / 1_000);
    const bareRate = READINGS / (mid.bareMs / 1_000);
    console.log(
      `drain (median round): ${Math.round(drainRate)}/s; bare mqtt.js ${Math.round(bareRate)}/s ` +
        `(${payloads.length} payloads, ${(payloadBytes / 1e6).toFixed(1)} MB, window ${WINDOW}, sink: ${sink.kind}); ` +
        `until the outbox is empty ${Math.round(READINGS / (mid.emptyMs / 1_000))}/s`,
    );

    // --- 2. footprint ---------------------------------------------------------------------
    const sim = await startSimulator({
      port: 0,
      host: "127.0.0.1",
      tickMs: 1_000,
      meters: Array.from({ length: FOOTPRINT_METERS }, (_, i) => ({ unitId: i + 1, profile: "sdm630", seed: i })),
    });
    const config = writeGatewayConfig({
      dir: temp.dir,
      gatewayId: GATEWAY,
      uplink: { url: broker.url, protocolVersion: 5, ...gatewayTls },
      modbusPort: sim.port,
      meters: Array.from({ length: FOOTPRINT_METERS }, (_, i) => ({
        id: `meter-${i + 1}`,
        unitId: i + 1,
        pollIntervalMs: 1_000,
      })),
    });
    if (FOOTPRINT_STATUS) {
      const passwordHashFile = path.join(temp.dir, "status-password.scrypt");
      writeFileSync(passwordHashFile, `${await hashPassword("bench password")}\n`, { mode: 0o600 });
      const withStatus = JSON.parse(readFileSync(config, "utf8")) as Record<string, unknown>;
      withStatus.status = { host: "127.0.0.1", port: 0, passwordHashFile };
      writeFileSync(config, JSON.stringify(withStatus, null, 2));
    }
    // As production runs it (hardware/systemd/edgemeter-gateway.service).
    const gateway = startNode("gateway", BIN.gateway, ["run", "--config", config], {
      env: { NODE_OPTIONS: GATEWAY_NODE_OPTIONS },
    });
    await gateway.waitForLine(/^gateway: /, 30_000);
    const pid = gateway.child.pid as number;
    const cpuMs = () => {
      // /proc/<pid>/stat fields 14, 15: utime, stime in clock ticks (USER_HZ = 100 on Linux).
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
      return ((Number(fields[11]) + Number(fields[12])) * 1_000) / 100;
    };
    const seqNow = () => {
      const db = new Database(path.join(temp.dir, `${GATEWAY}-data`, "outbox.sqlite"), { readonly: true });
      try {
        return (db.prepare("SELECT next_seq FROM outbox_counter").get() as { next_seq: number }).next_seq;
      } finally {
        db.close();
      }
    };
    // Skip the start-up (module loading, TLS handshake) so the figure is the steady state.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    const cpuStart = cpuMs();
    const seqStart = seqNow();
    await new Promise((resolve) => setTimeout(resolve, FOOTPRINT_S * 1_000));
    const cpuUsedMs = cpuMs() - cpuStart;
    const readings = seqNow() - seqStart;
    const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? Number.NaN);
    await gateway.stop();
    await sim.close();
    const peakRssMb = hwmKb / 1_024;
    const cpuMsPer1000Readings = (cpuUsedMs / readings) * 1_000;
    console.log(
      `footprint: ${FOOTPRINT_METERS} meters at 1 s for ${FOOTPRINT_S} s${FOOTPRINT_STATUS ? " with the status page" : ""}: ` +
        `${readings} readings, peak RSS ${peakRssMb.toFixed(1)} MB, ${cpuUsedMs} ms CPU (NODE_OPTIONS ${GATEWAY_NODE_OPTIONS})`,
    );
    const drainRatio = Number((bareRate > 0 ? drainRate / bareRate : 0).toFixed(3));
    console.log(
      JSON.stringify({
        bench: "uplink",
        drainRatio,
        readingsPerSecond: Math.round(drainRate),
        bareReadingsPerSecond: Math.round(bareRate),
        drainRoundRatios: rounds.map((r) => Number(r.ratio.toFixed(3))),
        readingsPerSecondUntilEmpty: Math.round(READINGS / (mid.emptyMs / 1_000)),
        peakRssMb: Number(peakRssMb.toFixed(1)),
        cpuMsPer1000Readings: Number(cpuMsPer1000Readings.toFixed(1)),
        footprintSeconds: FOOTPRINT_S,
        footprintStatusPage: FOOTPRINT_STATUS,
        ratio: drainRatio,
      }),
    );
  } finally {
    await sink.stop();
    await broker.stop();
    temp.remove();
  }
}

// The drain runs in this process: with the gateway's production Node.js options, like the
// footprint's gateway process (the bench runner starts us without them).
if (process.env.NODE_OPTIONS !== GATEWAY_NODE_OPTIONS) {
  const child = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    env: { ...process.env, NODE_OPTIONS: GATEWAY_NODE_OPTIONS },
    stdio: "inherit",
  });
  process.exit(child.status ?? 1);
}
await main();
