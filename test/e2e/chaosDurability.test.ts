/**
 * Chaos (issue 4): the simulator feeds a real gateway process for a few minutes while the
 * test SIGKILLs the gateway at random moments (12 times) and stops the TLS Mosquitto for 30 s
 * twice. Afterwards, the set of readings in the cloud equals the set the gateway stored:
 *
 * The outbox hands out seq 0, 1, 2, ... from a counter committed with the readings, so the
 * readings the gateway ever stored are exactly seq 0 .. next_seq-1 (a reading still in the
 * append buffer at a SIGKILL never got a seq: it was never stored). The cloud lands each
 * reading once, keyed by (gatewayId, seq) and (meterId, ts). So: cloud seqs = [0, next_seq)
 * means no gaps, and as many distinct (meterId, ts) as seqs means no duplicates.
 *
 * The broker runs with persistence, as a site broker must: a message it acknowledged to the
 * gateway and had not yet delivered to the cloud's persistent session survives its restart.
 */
import path from "node:path";
import { startSimulator } from "@edgemeter/hardware";
import { freePort, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { mosquittoAvailable, startMosquitto } from "../support/mosquitto.js";
import { makeTestPki } from "../support/pki.js";
import { BIN, type RunningProcess, startNode, stopAllProcesses } from "../support/processes.js";
import {
  ApiClient,
  type ApiReading,
  createApiKey,
  startCloud,
  writeCloudConfig,
  writeGatewayConfig,
} from "../support/stack.js";

const hasMosquitto = requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto");

const METERS = [
  { id: "chaos-a", unitId: 1, pollIntervalMs: 250 },
  { id: "chaos-b", unitId: 2, pollIntervalMs: 250 },
];
const KILLS = 12;
const BROKER_OUTAGE_MS = 30_000;

/** A deterministic PRNG (mulberry32) so a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!hasMosquitto)("chaos: SIGKILLed gateway and a restarting broker lose and duplicate nothing", () => {
  const temp = tempDir("chaos");
  afterAll(async () => {
    await stopAllProcesses();
    temp.remove();
  });

  it(
    "the cloud holds exactly the readings the gateway stored",
    async () => {
      const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);
      const random = prng(seed);
      const gatewayId = "gw-chaos";
      const pki = await makeTestPki(temp.dir, {
        gateways: [gatewayId],
        servers: ["localhost"],
        clients: ["cloud-ingest"],
      });
      const broker = await startMosquitto({ dir: temp.dir, pki, cloudClientName: "cloud-ingest", persistence: true });
      const brokerUrl = broker.url.replace("127.0.0.1", "localhost");
      const sim = await startSimulator({
        port: 0,
        host: "127.0.0.1",
        tickMs: 250,
        meters: METERS.map((m, i) => ({ unitId: m.unitId, profile: "sdm630", seed: 7 + i })),
      });
      let simClosed = false;
      try {
        const cloudConfig = writeCloudConfig({
          dir: temp.dir,
          apiPort: await freePort(),
          mqtt: { url: brokerUrl, protocolVersion: 5, clientId: "cloud-ingest", ...pki.client("cloud-ingest") },
        });
        const apiKey = createApiKey(cloudConfig); // before serve: PGlite is one process at a time
        const cloud = await startCloud(cloudConfig);
        const api = new ApiClient(cloud.apiUrl, apiKey);
        const gatewayConfig = writeGatewayConfig({
          dir: temp.dir,
          gatewayId,
          uplink: { url: brokerUrl, protocolVersion: 5, ...pki.gateway(gatewayId) },
          modbusPort: sim.port,
          meters: METERS,
        });
        const startedMs = Date.now();
        let gateway: RunningProcess = startNode("gateway", BIN.gateway, ["run", "--config", gatewayConfig]);
        const log: string[] = [`seed ${seed}`];

        // The schedule: 12 kills at random moments, two 30 s broker outages, over ~2.5 minutes.
        // Kills land anywhere: while polling, mid-batch, while the broker is away, right after start.
        const outages = [20_000 + random() * 10_000, 85_000 + random() * 10_000];
        const kills = Array.from({ length: KILLS }, () => 5_000 + random() * 140_000).sort((a, b) => a - b);
        const events = [
          ...kills.map((atMs) => ({ atMs, what: "kill" as const })),
          ...outages.flatMap((atMs) => [
            { atMs, what: "brokerDown" as const },
            { atMs: atMs + BROKER_OUTAGE_MS, what: "brokerUp" as const },
          ]),
        ].sort((a, b) => a.atMs - b.atMs);
        for (const event of events) {
          const waitMs = startedMs + event.atMs - Date.now();
          if (waitMs > 0) await sleep(waitMs);
          log.push(`${Math.round(event.atMs / 1000)} s: ${event.what}`);
          if (event.what === "kill") {
            gateway.child.kill("SIGKILL");
            await gateway.exited();
            // Restart at once, or after a short random pause (a power cut that lasts).
            await sleep(random() * 2_000);
            gateway = startNode("gateway", BIN.gateway, ["run", "--config", gatewayConfig]);
          } else if (event.what === "brokerDown") {
            await broker.stop();
          } else {
            await broker.restart();
          }
        }
        // Let it run a little with everything up, then stop it properly and let it drain first.
        const dataDir = path.join(temp.dir, `${gatewayId}-data`);
        const outboxDepth = () => {
          const db = new Database(path.join(dataDir, "outbox.sqlite"), { readonly: true, fileMustExist: true });
          try {
            // Unsent: above the delivered mark (SqliteOutbox.ackRanges).
            return (
              db
                .prepare("SELECT count(*) AS n FROM outbox WHERE seq > (SELECT delivered_through FROM outbox_counter)")
                .get() as { n: number }
            ).n;
          } finally {
            db.close();
          }
        };
        await sleep(5_000);
        // The meters go quiet (the simulator stops), so the outbox can drain to the last reading.
        await sim.close();
        simClosed = true;
        // A poll in flight and the append buffer (200 ms) may still store a last reading.
        await sleep(3_000);
        await waitFor(() => (outboxDepth() === 0 ? true : undefined), "the outbox drained", 60_000, 500);
        const stopped = await gateway.stop("SIGTERM");
        expect(stopped.code, gateway.output().slice(-3000)).toBe(0);

        const db = new Database(path.join(dataDir, "outbox.sqlite"), { readonly: true });
        const nextSeq = (db.prepare("SELECT next_seq FROM outbox_counter").get() as { next_seq: number }).next_seq;
        const leftInOutbox = (db.prepare("SELECT count(*) AS n FROM outbox").get() as { n: number }).n;
        db.close();
        expect(leftInOutbox).toBe(0);
        expect(nextSeq, "readings stored").toBeGreaterThan(300);

        // Everything the gateway stored, and only that, lands in the cloud (ingest may still be busy).
        const from = new Date(startedMs - 60_000).toISOString();
        const to = new Date(Date.now() + 60_000).toISOString();
        const fetchAll = async (): Promise<ApiReading[]> => {
          const all: ApiReading[] = [];
          for (const meter of METERS) {
            for (let offset = 0; ; offset += 5_000) {
              const { status, body } = await api.get<{ items: ApiReading[] }>(
                `/v1/meters/${meter.id}/readings?from=${from}&to=${to}&limit=5000&offset=${offset}`,
              );
              if (status !== 200) throw new Error(`readings: HTTP ${status}`);
              all.push(...body.items);
              if (body.items.length < 5_000) break;
            }
          }
          return all;
        };
        const inCloud = await waitFor(
          async () => {
            const all = await fetchAll();
            return all.length >= nextSeq ? all : undefined;
          },
          `all ${nextSeq} readings in the cloud`,
          60_000,
          1_000,
        ).catch(async () => fetchAll());

        const seqs = inCloud.map((r) => r.seq).sort((a, b) => a - b);
        const expectedSeqs = Array.from({ length: nextSeq }, (_, i) => i);
        const missing = expectedSeqs.filter((seq) => !seqs.includes(seq));
        expect(missing, log.join("\n")).toEqual([]); // no gaps
        expect(seqs, log.join("\n")).toEqual(expectedSeqs); // no duplicates, nothing extra
        const keys = new Set(inCloud.map((r) => `${r.meterId} ${r.ts}`));
        expect(keys.size).toBe(nextSeq); // (meterId, ts) unique
        expect(inCloud.every((r) => r.gatewayId === gatewayId)).toBe(true);
        // The gateway really was killed mid-work: it restarted KILLS times and kept counting seq.
        expect(log.filter((line) => line.endsWith("kill"))).toHaveLength(KILLS);
        await cloud.process.stop();
      } finally {
        if (!simClosed) await sim.close();
        await broker.stop();
      }
    },
    15 * 60_000,
  );
});
