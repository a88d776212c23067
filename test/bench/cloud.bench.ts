/**
 * `npm run bench -- cloud` (issue 5). Figures, not pass/fail:
 * 1. Ingest into the PostgreSQL server through MQTT (a TLS Mosquitto, MQTT 5 shared
 *    subscription, one cloud instance in this process): readings per second, and the ratio to
 *    a plain COPY of the same rows into a freshly migrated database in the same run.
 * 2. API: p50/p99 latency of `/consumption/daily/{year}/{meter}` for a meter with a year of
 *    15-minute data at 50 connections (autocannon), and the p99 ratio to a fastify
 *    hello-world route measured the same way in the same run.
 * Last line: {"bench":"cloud","ingestRatio":…,"readingsPerSecond":…,"p50Ms":…,"p99Ms":…,"p99RatioToHelloWorld":…}
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { buildApi, hashApiKey, PgSqlClient, PostgresStore, parseCloudConfig, startCloud } from "@edgemeter/cloud";
import { type TelemetryPayload, topicFor } from "@edgemeter/shared";
import { freePort, POSTGRES_URL, tempDir } from "@edgemeter/shared/testing";
import autocannon from "autocannon";
import Fastify from "fastify";
import mqtt from "mqtt";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import pino from "pino";
import { startMosquitto } from "../support/mosquitto.js";
import { makeTestPki } from "../support/pki.js";

const GATEWAY = "gw-bench";
const METERS = 100;
const READINGS_PER_METER_PER_BATCH = 5;
const BATCHES = 200; // 100,000 readings
const YEAR_METER = "bench-year";
const INGEST_CONNECTIONS = Number(process.env.BENCH_INGEST_CONNECTIONS ?? 8);
const CONNECTIONS = 50;
const DURATION_S = 10;
const logger = pino({ level: "warn" });

async function createDatabase(name: string): Promise<string> {
  const admin = await PgSqlClient.open({ databaseUrl: POSTGRES_URL });
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.close();
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase(name: string): Promise<void> {
  const admin = await PgSqlClient.open({ databaseUrl: POSTGRES_URL });
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.close();
}

function batch(n: number): TelemetryPayload {
  const readings: TelemetryPayload["readings"] = [];
  for (let m = 0; m < METERS; m++) {
    for (let i = 0; i < READINGS_PER_METER_PER_BATCH; i++) {
      const step = n * READINGS_PER_METER_PER_BATCH + i;
      readings.push({
        meterId: `bench-m${m}`,
        seq: (n * METERS + m) * READINGS_PER_METER_PER_BATCH + i,
        ts: new Date(Date.UTC(2026, 0, 1) + step * 60_000).toISOString(),
        clock: "synced",
        values: { importEnergyKwh: 100 + step * 0.02, voltageL1V: 230.1, frequencyHz: 50 },
      });
    }
  }
  return { v: 1, gatewayId: GATEWAY, batchId: `bench-${n}`, sentAt: new Date().toISOString(), readings };
}

async function countReadings(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string }>("SELECT count(*)::text AS n FROM readings");
    return Number(rows[0]?.n);
  } finally {
    await client.end();
  }
}

async function benchIngest(dir: string): Promise<{ readingsPerSecond: number; copyPerSecond: number }> {
  const pki = await makeTestPki(dir, { gateways: [GATEWAY], clients: ["cloud-ingest"] });
  const broker = await startMosquitto({ dir, pki });
  const dbName = `edgemeter_bench_${process.pid}`;
  const copyDbName = `edgemeter_bench_copy_${process.pid}`;
  const url = await createDatabase(dbName);
  const copyUrl = await createDatabase(copyDbName);
  const batches = Array.from({ length: BATCHES }, (_, n) => batch(n));
  const total = BATCHES * METERS * READINGS_PER_METER_PER_BATCH;
  try {
    const cloudDir = path.join(dir, "cloud");
    mkdirSync(cloudDir);
    const client = pki.client("cloud-ingest");
    const config = parseCloudConfig(
      JSON.stringify({
        databaseUrl: url,
        mqtt: {
          url: broker.url.replace("127.0.0.1", "localhost"),
          protocolVersion: 5,
          clientId: "bench-cloud",
          // mqtt.js lands one message per connection at a time (acks after commit): this many in flight.
          connections: INGEST_CONNECTIONS,
          ...client,
        },
        api: { host: "127.0.0.1", port: 0 },
        log: { level: "warn" },
        platform: { silencePollIntervals: 0 },
      }),
      path.join(cloudDir, "cloud.yaml"),
      {},
    );
    const cloud = await startCloud(config, logger);
    const gateway = pki.gateway(GATEWAY);
    const { readFileSync } = await import("node:fs");
    const publisher = await mqtt.connectAsync(broker.url.replace("127.0.0.1", "localhost"), {
      protocolVersion: 5,
      clientId: GATEWAY,
      ca: readFileSync(gateway.caFile),
      cert: readFileSync(gateway.certFile),
      key: readFileSync(gateway.keyFile),
    });
    const payloads = batches.map((b) => JSON.stringify(b));
    const started = performance.now();
    await Promise.all(payloads.map((p) => publisher.publishAsync(topicFor("telemetry", GATEWAY), p, { qos: 1 })));
    while ((await countReadings(url)) < total) await new Promise((r) => setTimeout(r, 100));
    const ingestS = (performance.now() - started) / 1000;
    await publisher.endAsync();
    await cloud.close();

    // Baseline: the same rows, COPY'd into the same (migrated, partitioned) readings table.
    const copyStore = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: copyUrl }), logger });
    await copyStore.migrate();
    await copyStore.sql.query(
      "CREATE TABLE IF NOT EXISTS readings_2026_01 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')",
    );
    await copyStore.close();
    const lines: string[] = [];
    const now = new Date().toISOString();
    for (const b of batches) {
      for (const r of b.readings) {
        lines.push(
          [
            r.meterId,
            r.ts,
            GATEWAY,
            r.seq,
            r.clock,
            now,
            JSON.stringify(r.values),
            "\\N",
            r.values.importEnergyKwh,
            "\\N",
          ]
            .map(String)
            .join("\t"),
        );
      }
    }
    const copyClient = new pg.Client({ connectionString: copyUrl });
    await copyClient.connect();
    const copyStarted = performance.now();
    await pipeline(
      Readable.from([`${lines.join("\n")}\n`]),
      copyClient.query(
        copyFrom(
          `COPY readings (meter_id, ts, gateway_id, seq, clock, received_at, "values", errors, import_energy_kwh, export_energy_kwh) FROM STDIN`,
        ),
      ),
    );
    const copyS = (performance.now() - copyStarted) / 1000;
    await copyClient.end();
    return { readingsPerSecond: total / ingestS, copyPerSecond: total / copyS };
  } finally {
    await broker.stop();
    await dropDatabase(dbName);
    await dropDatabase(copyDbName);
  }
}

async function cannon(
  url: string,
  headers: Record<string, string>,
): Promise<{ p50: number; p99: number; non2xx: number }> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, headers });
  return { p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx };
}

async function benchApi(): Promise<{ p50Ms: number; p99Ms: number; helloP99Ms: number; helloP50Ms: number }> {
  const dbName = `edgemeter_bench_api_${process.pid}`;
  const url = await createDatabase(dbName);
  const store = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: url }), logger });
  try {
    await store.migrate();
    // A year of 15-minute data for one meter, landed through the store (so rollups are real).
    const readings: TelemetryPayload["readings"] = [];
    const start = Date.UTC(2026, 0, 1);
    for (let i = 0; i <= 365 * 96; i++) {
      readings.push({
        meterId: YEAR_METER,
        seq: i,
        ts: new Date(start + i * 15 * 60_000).toISOString(),
        clock: "synced",
        values: { importEnergyKwh: 5000 + i * 0.1 },
      });
    }
    for (let i = 0; i < readings.length; i += 2000) {
      await store.landTelemetry(
        {
          v: 1,
          gatewayId: GATEWAY,
          batchId: `y-${i}`,
          sentAt: new Date().toISOString(),
          readings: readings.slice(i, i + 2000),
        },
        new Date(),
      );
    }
    const key = "bench-read-key-0123456789";
    await store.createApiKey("bench", hashApiKey(key), ["read"]);
    const api = await buildApi({ store, meterData: store, logger });
    const apiPort = await freePort();
    await api.listen({ host: "127.0.0.1", port: apiPort });
    const hello = Fastify();
    hello.get("/hello", async () => ({ hello: "world" }));
    const helloPort = await freePort();
    await hello.listen({ host: "127.0.0.1", port: helloPort });
    try {
      const route = await cannon(`http://127.0.0.1:${apiPort}/consumption/daily/2026/${YEAR_METER}`, {
        "x-api-key": key,
      });
      const baseline = await cannon(`http://127.0.0.1:${helloPort}/hello`, {});
      if (route.non2xx > 0) throw new Error(`${route.non2xx} non-2xx answers from the consumption route`);
      return { p50Ms: route.p50, p99Ms: route.p99, helloP50Ms: baseline.p50, helloP99Ms: baseline.p99 };
    } finally {
      await api.close();
      await hello.close();
    }
  } finally {
    await store.close();
    await dropDatabase(dbName);
  }
}

const temp = tempDir("bench-cloud");
try {
  const ingest = await benchIngest(temp.dir);
  console.log(
    `ingest: ${Math.round(ingest.readingsPerSecond)} readings/s through MQTT; COPY: ${Math.round(ingest.copyPerSecond)} rows/s`,
  );
  const api = await benchApi();
  console.log(
    `api: /consumption/daily p50 ${api.p50Ms} ms, p99 ${api.p99Ms} ms; hello-world p50 ${api.helloP50Ms} ms, p99 ${api.helloP99Ms} ms (${CONNECTIONS} connections, ${DURATION_S} s)`,
  );
  console.log(
    JSON.stringify({
      bench: "cloud",
      ingestRatio: Number((ingest.readingsPerSecond / ingest.copyPerSecond).toFixed(3)),
      readingsPerSecond: Math.round(ingest.readingsPerSecond),
      ingestConnections: INGEST_CONNECTIONS,
      p50Ms: api.p50Ms,
      p99Ms: api.p99Ms,
      p99RatioToHelloWorld: Number((api.p99Ms / Math.max(api.helloP99Ms, 1)).toFixed(2)),
    }),
  );
} finally {
  temp.remove();
}
