/**
 * Issue 5: two cloud instances on one Mosquitto share the telemetry subscription
 * (`$share/edgemeter-ingest/…`, MQTT 5) and one PostgreSQL database. One is killed with SIGKILL
 * mid-stream and restarted with the same client id (its persistent session holds what it had
 * received but not acknowledged: PUBACK is sent only after the commit). Every reading must land
 * exactly once: all of them present, and the consumption rollups — which a batch landed twice
 * would double — equal to the register differences.
 */
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { PgSqlClient } from "@edgemeter/cloud";
import { type TelemetryPayload, topicFor } from "@edgemeter/shared";
import { freePort, POSTGRES_URL, probeTcp, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import mqtt from "mqtt";
import { afterAll, describe, expect, it } from "vitest";
import { mosquittoAvailable, type RunningMosquitto, startMosquitto } from "../support/mosquitto.js";
import { makeTestPki } from "../support/pki.js";
import { stopAllProcesses } from "../support/processes.js";
import { ApiClient, createApiKey, startCloud, writeCloudConfig } from "../support/stack.js";

const GATEWAY = "gw-share";
const METERS = ["sh-m1", "sh-m2", "sh-m3", "sh-m4"];
const BATCHES = 240;
const READINGS_PER_METER = 5;
const KILL_AFTER_BATCH = 80;
const START_MS = Date.UTC(2026, 10, 1);
const STEP_KWH = 0.01;

const mosquittoUp = requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto");
const pgUrl = new URL(POSTGRES_URL);
const postgresUp = requireService(
  "PostgreSQL",
  await probeTcp(pgUrl.hostname, Number(pgUrl.port || 5432)),
  `expected at ${pgUrl.host}; set EDGEMETER_TEST_DATABASE_URL`,
);

function batch(n: number): TelemetryPayload {
  const readings: TelemetryPayload["readings"] = [];
  for (const [m, meterId] of METERS.entries()) {
    for (let i = 0; i < READINGS_PER_METER; i++) {
      const step = n * READINGS_PER_METER + i;
      readings.push({
        meterId,
        seq: (n * METERS.length + m) * READINGS_PER_METER + i,
        ts: new Date(START_MS + step * 60_000).toISOString(),
        clock: "synced",
        values: { importEnergyKwh: 1000 + step * STEP_KWH },
      });
    }
  }
  return { v: 1, gatewayId: GATEWAY, batchId: `share-${n}`, sentAt: new Date().toISOString(), readings };
}

describe.skipIf(!mosquittoUp || !postgresUp)("two cloud instances, one shared subscription, one SIGKILL", () => {
  const temp = tempDir("cloud-share");
  let broker: RunningMosquitto | null = null;
  const databaseName = `edgemeter_share_${process.pid}_${Date.now()}`;

  afterAll(async () => {
    await stopAllProcesses();
    await broker?.stop();
    const admin = await PgSqlClient.open({ databaseUrl: POSTGRES_URL });
    await admin.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
    await admin.close();
    temp.remove();
  });

  it("lands every reading exactly once", async () => {
    const pki = await makeTestPki(temp.dir, { gateways: [GATEWAY], clients: ["cloud-ingest"] });
    broker = await startMosquitto({ dir: temp.dir, pki });
    const admin = await PgSqlClient.open({ databaseUrl: POSTGRES_URL });
    await admin.query(`CREATE DATABASE ${databaseName}`);
    await admin.close();
    const databaseUrl = new URL(POSTGRES_URL);
    databaseUrl.pathname = `/${databaseName}`;

    const configOf = async (name: string) => {
      const dir = path.join(temp.dir, name);
      mkdirSync(dir);
      return writeCloudConfig({
        dir,
        apiPort: await freePort(),
        mqtt: { url: broker?.url ?? "", protocolVersion: 5, clientId: `cloud-${name}`, ...pki.client("cloud-ingest") },
        databaseUrl: databaseUrl.toString(),
      });
    };
    const configA = await configOf("a");
    const configB = await configOf("b");
    const apiKey = createApiKey(configA);
    let a = await startCloud(configA);
    const b = await startCloud(configB);

    const gateway = pki.gateway(GATEWAY);
    const publisher = await mqtt.connectAsync(broker.url, {
      protocolVersion: 5,
      clientId: GATEWAY,
      ca: readFileSync(gateway.caFile),
      cert: readFileSync(gateway.certFile),
      key: readFileSync(gateway.keyFile),
      servername: "localhost",
    });
    try {
      for (let n = 0; n < BATCHES; n++) {
        await publisher.publishAsync(topicFor("telemetry", GATEWAY), JSON.stringify(batch(n)), { qos: 1 });
        if (n === KILL_AFTER_BATCH) {
          // Mid-stream: instance A holds unacknowledged messages; its process dies without a word.
          a.process.child.kill("SIGKILL");
          await a.process.exited();
        }
      }
    } finally {
      await publisher.endAsync();
    }
    // Same client id: the broker hands A's session (and what A never acknowledged) back to it.
    a = await startCloud(configA);

    const db = await PgSqlClient.open({ databaseUrl: databaseUrl.toString() });
    try {
      const total = BATCHES * METERS.length * READINGS_PER_METER;
      await waitFor(
        async () => {
          const { rows } = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM readings");
          return Number(rows[0]?.n) === total ? true : undefined;
        },
        `${total} readings in PostgreSQL`,
        120_000,
        500,
      );
      const { rows } = await db.query<{ meter_id: string; n: string; first: string; last: string }>(
        `SELECT meter_id, count(*)::text AS n, min(ts)::text AS first, max(ts)::text AS last FROM readings
         GROUP BY meter_id ORDER BY meter_id`,
      );
      expect(rows.map((row) => [row.meter_id, Number(row.n)])).toEqual(
        METERS.map((meterId) => [meterId, BATCHES * READINGS_PER_METER]),
      );
      // A batch landed twice would have counted its consumption twice.
      const steps = BATCHES * READINGS_PER_METER - 1;
      const rollups = await db.query<{ meter_id: string; kwh: number }>(
        "SELECT meter_id, sum(import_kwh) AS kwh FROM consumption_daily GROUP BY meter_id ORDER BY meter_id",
      );
      for (const row of rollups.rows) expect(row.kwh).toBeCloseTo(steps * STEP_KWH, 6);
      expect(rollups.rows).toHaveLength(METERS.length);

      // Both instances took part: B landed some of the stream, not all of it.
      const stats = await new ApiClient(b.apiUrl, apiKey).get<{ stats: Record<string, number> | null }>(
        "/v1/ingest/stats",
      );
      const insertedByB = stats.body.stats?.inserted ?? 0;
      expect(insertedByB).toBeGreaterThan(0);
      expect(insertedByB).toBeLessThan(total);
    } finally {
      await db.close();
    }
  }, 240_000);
});
