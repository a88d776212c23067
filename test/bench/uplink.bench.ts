/**
 * `npm run bench -- uplink` (issue 4). Figures, not pass/fail:
 * 1. Drain: 200,000 readings buffered in a real SQLite outbox, forwarded by the gateway's
 *    Forwarder + MqttUplink to a TLS Mosquitto (mTLS, MQTT 5, QoS 1): readings per second,
 *    and the ratio to a bare mqtt.js QoS 1 publisher sending the same payload bytes with the
 *    same window of messages in flight, in the same run. Target ratio >= 0.8.
 * 2. Footprint: a gateway process polling 32 simulated meters every second (BENCH_FOOTPRINT_S,
 *    default 600 s): peak RSS (VmHWM, target <= 80 MB) and CPU ms per 1,000 readings.
 * Last line: {"bench":"uplink","drainRatio":…,"readingsPerSecond":…,"peakRssMb":…,"cpuMsPer1000Readings":…}
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { Forwarder, MqttUplink, type NewReading, SqliteOutbox, silentLogger } from "@edgemeter/gateway";
import { startSimulator } from "@edgemeter/hardware";
import { type TelemetryPayload, topicFor } from "@edgemeter/shared";
import { tempDir, waitFor } from "@edgemeter/shared/testing";
import Database from "better-sqlite3";
import mqtt from "mqtt";
import { startMosquitto } from "../support/mosquitto.js";
import { makeTestPki, readTlsCredentials } from "../support/pki.js";
import { BIN, startNode } from "../support/processes.js";
import { writeGatewayConfig } from "../support/stack.js";

const READINGS = Number(process.env.BENCH_DRAIN_READINGS ?? 200_000);
const WINDOW = 4;
const BATCH_READINGS = 500;
const FOOTPRINT_S = Number(process.env.BENCH_FOOTPRINT_S ?? 600);
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

async function main(): Promise<void> {
  const temp = tempDir("bench-uplink");
  const pki = await makeTestPki(temp.dir, { gateways: [GATEWAY], clients: ["cloud-ingest"] });
  const broker = await startMosquitto({ dir: temp.dir, pki });
  const gatewayTls = pki.gateway(GATEWAY);
  // A subscriber, as the cloud ingest is: without one Mosquitto answers PUBACK 16 "no matching
  // subscribers", which the gateway (rightly) does not count as delivered. QoS 0 so its own
  // acknowledgements do not load the broker.
  const sink = await mqtt.connectAsync(broker.url, {
    protocolVersion: 5,
    clientId: "cloud-ingest",
    ...readTlsCredentials(pki.client("cloud-ingest")),
  });
  await sink.subscribeAsync("edgemeter/v1/gw/+/telemetry", { qos: 0 });
  try {
    // --- 1. drain -----------------------------------------------------------------------
    const outbox = new SqliteOutbox({ file: path.join(temp.dir, "outbox.sqlite") });
    for (let i = 0; i < READINGS; i += 1_000) {
      outbox.append(Array.from({ length: Math.min(1_000, READINGS - i) }, (_, k) => reading(i + k)));
    }
    // The same payload bytes for the baseline: the batches as the forwarder will cut them.
    const payloads: Buffer[] = [];
    for (let after = -1; ; ) {
      const batch = outbox.nextBatchAfter(after, { maxReadings: BATCH_READINGS, maxBytes: 120_000 - 256 });
      const last = batch.readings.at(-1);
      if (last === undefined) break;
      const payload: TelemetryPayload = {
        v: 1,
        gatewayId: GATEWAY,
        batchId: `s${batch.readings[0]?.seq}-${last.seq}`,
        sentAt: new Date().toISOString(),
        readings: batch.readings,
      };
      payloads.push(Buffer.from(JSON.stringify(payload)));
      after = last.seq;
    }

    // Baseline: bare mqtt.js, QoS 1, WINDOW publishes in flight, same bytes, same broker, same TLS.
    const bare = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: GATEWAY,
      ...readTlsCredentials(gatewayTls),
    });
    const topic = topicFor("telemetry", GATEWAY);
    const bareStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: WINDOW }, async () => {
        while (next < payloads.length) {
          const payload = payloads[next++] as Buffer;
          await bare.publishAsync(topic, payload, { qos: 1 });
        }
      }),
    );
    const bareMs = performance.now() - bareStart;
    await bare.endAsync();
    const bareRate = READINGS / (bareMs / 1_000);

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
    const drainStart = performance.now();
    forwarder.start();
    // Poll the forwarder's counter, not outbox.depth(): a count(*) over 200,000 rows every few
    // milliseconds on the same event loop would slow down what is measured.
    await waitFor(
      () => (forwarder.stats().publishedReadings >= READINGS ? true : undefined),
      "all readings acknowledged",
      600_000,
      5,
    );
    const drainMs = performance.now() - drainStart;
    await forwarder.stop();
    await uplink.close();
    outbox.close();
    const drainRate = READINGS / (drainMs / 1_000);
    console.log(
      `drain: ${READINGS} readings in ${Math.round(drainMs)} ms = ${Math.round(drainRate)}/s; ` +
        `bare mqtt.js: ${Math.round(bareMs)} ms = ${Math.round(bareRate)}/s (${payloads.length} payloads, window ${WINDOW})`,
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
    const gateway = startNode("gateway", BIN.gateway, ["run", "--config", config]);
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
      `footprint: ${FOOTPRINT_METERS} meters at 1 s for ${FOOTPRINT_S} s: ${readings} readings, ` +
        `peak RSS ${peakRssMb.toFixed(1)} MB, ${cpuUsedMs} ms CPU`,
    );
    console.log(
      JSON.stringify({
        bench: "uplink",
        drainRatio: Number((drainRate / bareRate).toFixed(3)),
        readingsPerSecond: Math.round(drainRate),
        bareReadingsPerSecond: Math.round(bareRate),
        peakRssMb: Number(peakRssMb.toFixed(1)),
        cpuMsPer1000Readings: Number(cpuMsPer1000Readings.toFixed(1)),
        footprintSeconds: FOOTPRINT_S,
        ratio: Number((drainRate / bareRate).toFixed(3)),
      }),
    );
  } finally {
    await sink.endAsync(true);
    await broker.stop();
    temp.remove();
  }
}

await main();
