/**
 * `npm run bench -- cloud` (issue 5). Figures, not pass/fail:
 * 1. Ingest into the PostgreSQL server through MQTT (a TLS Mosquitto, MQTT 5 shared
 *    subscription, one cloud instance in this process with 16 subscriber connections, a fleet
 *    of 8 gateways with 100 meters each): readings per second, and the ratio to
 *    a plain COPY of the same rows into a freshly migrated database in the same run (median
 *    of BENCH_ROUNDS rounds), then a breakdown of where an ingest round spends its time.
 * 2. API: p50/p99 latency of `/consumption/daily/{year}/{meter}` for a meter with a year of
 *    15-minute data at 50 connections (autocannon), and the p99 ratio to a fastify
 *    hello-world route measured the same way in the same run.
 * Last line: {"bench":"cloud","ingestRatio":…,"readingsPerSecond":…,"p50Ms":…,"p99Ms":…,"p99RatioToHelloWorld":…}
 */
import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  buildApi,
  hashApiKey,
  IngestService,
  PgSqlClient,
  PostgresStore,
  parseCloudConfig,
  type SqlExecutor,
  startCloud,
} from "@edgemeter/cloud";
import { type TelemetryPayload, topicFor } from "@edgemeter/shared";
import { freePort, POSTGRES_URL, tempDir } from "@edgemeter/shared/testing";
import autocannon from "autocannon";
import Fastify from "fastify";
import mqtt from "mqtt";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import pino from "pino";
import { startMosquitto } from "../support/mosquitto.js";
import { makeTestPki, type TestPki } from "../support/pki.js";

/** One MQTT message as IngestService.landTogether takes it. */
type IncomingMessage = Parameters<IngestService["landTogether"]>[0][number];

/**
 * The fleet: BENCH_INGEST_GATEWAYS gateways (default 8), each with 100 meters of its own and its
 * own MQTT connection and certificate, publishing their batches at once (200 batches of 500
 * readings in all). A transaction lands one gateway's telemetry, so gateways land side by side;
 * BENCH_INGEST_GATEWAYS=1 is the worst case, every batch on the same 100 meters, whose locks
 * serialise the landings.
 */
const GATEWAYS = Math.max(1, Number(process.env.BENCH_INGEST_GATEWAYS ?? 8));
const gatewayIds = Array.from({ length: GATEWAYS }, (_, g) => (GATEWAYS === 1 ? "gw-bench" : `gw-bench-${g}`));
const GATEWAY = gatewayIds[0] as string;
const METERS = 100;
const READINGS_PER_METER_PER_BATCH = 5;
const BATCHES = 200; // 100,000 readings
const YEAR_METER = "bench-year";
const INGEST_CONNECTIONS = Number(process.env.BENCH_INGEST_CONNECTIONS ?? 16);
const INGEST_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
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

/** Batch n of the run: gateway n mod GATEWAYS, that gateway's (n div GATEWAYS)th batch. */
function batch(n: number): TelemetryPayload {
  const g = n % GATEWAYS;
  const k = Math.floor(n / GATEWAYS);
  const gatewayId = gatewayIds[g] as string;
  const readings: TelemetryPayload["readings"] = [];
  for (let m = 0; m < METERS; m++) {
    for (let i = 0; i < READINGS_PER_METER_PER_BATCH; i++) {
      const step = k * READINGS_PER_METER_PER_BATCH + i;
      readings.push({
        meterId: GATEWAYS === 1 ? `bench-m${m}` : `bench-g${g}-m${m}`,
        seq: (k * METERS + m) * READINGS_PER_METER_PER_BATCH + i,
        ts: new Date(Date.UTC(2026, 0, 1) + step * 60_000).toISOString(),
        clock: "synced",
        values: { importEnergyKwh: 100 + step * 0.02, voltageL1V: 230.1, frequencyHz: 50 },
      });
    }
  }
  return { v: 1, gatewayId, batchId: `bench-${n}`, sentAt: new Date().toISOString(), readings };
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

const TOTAL = BATCHES * METERS * READINGS_PER_METER_PER_BATCH;

/**
 * One ingest round: a fresh broker (no sessions left from another round) and database, one
 * cloud instance (startCloud, as deployed), the batches published at once, timed until the
 * ingest counted every reading as committed. Then the rows are counted in the database.
 */
async function ingestRound(
  dir: string,
  pki: TestPki,
  batches: readonly TelemetryPayload[],
  round: number,
): Promise<{ readingsPerSecond: number; ingestMs: number }> {
  const roundDir = path.join(dir, `round-${round}`);
  mkdirSync(roundDir);
  const broker = await startMosquitto({ dir: roundDir, pki });
  const dbName = `edgemeter_bench_${process.pid}_${round}`;
  const url = await createDatabase(dbName);
  try {
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
      path.join(roundDir, "cloud.yaml"),
      {},
    );
    const cloud = await startCloud(config, logger);
    const ingest = cloud.ingest;
    if (ingest === null) throw new Error("the bench cloud has no ingest");
    // One connection per gateway, as in the field (its certificate names it: the broker's ACL).
    const publishers = new Map<string, mqtt.MqttClient>();
    for (const gatewayId of gatewayIds) {
      const gateway = pki.gateway(gatewayId);
      publishers.set(
        gatewayId,
        await mqtt.connectAsync(broker.url.replace("127.0.0.1", "localhost"), {
          protocolVersion: 5,
          clientId: gatewayId,
          ca: readFileSync(gateway.caFile),
          cert: readFileSync(gateway.certFile),
          key: readFileSync(gateway.keyFile),
        }),
      );
    }
    const payloads = batches.map((b) => ({ gatewayId: b.gatewayId, json: JSON.stringify(b) }));
    const started = performance.now();
    await Promise.all(
      payloads.map((p) =>
        (publishers.get(p.gatewayId) as mqtt.MqttClient).publishAsync(topicFor("telemetry", p.gatewayId), p.json, {
          qos: 1,
        }),
      ),
    );
    // The ingest's own count of committed readings: polling it costs the database nothing
    // (a count(*) every few milliseconds would compete with the ingest for the same CPUs).
    while (ingest.stats().inserted < TOTAL) await new Promise((r) => setTimeout(r, 2));
    const ingestS = (performance.now() - started) / 1000;
    await Promise.all([...publishers.values()].map((publisher) => publisher.endAsync()));
    await cloud.close();
    const stored = await countReadings(url);
    if (stored !== TOTAL) throw new Error(`the database holds ${stored} readings, ${TOTAL} were published`);
    return { readingsPerSecond: TOTAL / ingestS, ingestMs: ingestS * 1000 };
  } finally {
    await broker.stop();
    await dropDatabase(dbName);
  }
}

/** The baseline: the same rows, COPY'd in one statement into a freshly migrated (partitioned) readings table. */
async function copyRound(batches: readonly TelemetryPayload[], round: number): Promise<{ rowsPerSecond: number }> {
  const copyDbName = `edgemeter_bench_copy_${process.pid}_${round}`;
  const copyUrl = await createDatabase(copyDbName);
  try {
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
            b.gatewayId,
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
    return { rowsPerSecond: TOTAL / copyS };
  } finally {
    await dropDatabase(copyDbName);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * BENCH_ROUNDS rounds (default 5) of an ingest run followed by a COPY run; the figures are the
 * medians. The machine is shared: one round's ratio can be off by a third when the load shifts
 * between its two halves, the median of rounds much less so.
 */
async function benchIngest(
  dir: string,
): Promise<{ readingsPerSecond: number; copyPerSecond: number; ratio: number; ratios: number[] }> {
  const pki = await makeTestPki(dir, { gateways: gatewayIds, clients: ["cloud-ingest"] });
  const batches = Array.from({ length: BATCHES }, (_, n) => batch(n));
  const ingestRates: number[] = [];
  const copyRates: number[] = [];
  const ratios: number[] = [];
  for (let round = 1; round <= INGEST_ROUNDS; round++) {
    const { readingsPerSecond } = await ingestRound(dir, pki, batches, round);
    const { rowsPerSecond } = await copyRound(batches, round);
    ingestRates.push(readingsPerSecond);
    copyRates.push(rowsPerSecond);
    ratios.push(readingsPerSecond / rowsPerSecond);
    console.log(
      `ingest round ${round}: ${Math.round(readingsPerSecond)} readings/s through MQTT; COPY ${Math.round(rowsPerSecond)} rows/s; ratio ${(readingsPerSecond / rowsPerSecond).toFixed(3)}`,
    );
  }
  const phases = await profileIngestPhases(dir, pki, batches);
  console.log(phases);
  return { readingsPerSecond: median(ingestRates), copyPerSecond: median(copyRates), ratio: median(ratios), ratios };
}

/**
 * Where an ingest run spends its time: one more round with timers wrapped around the cloud's
 * own classes (prototype methods, for this round only), printed as milliseconds per 100,000
 * readings. A statement's figure is the time the landing waited for it, JavaScript that runs
 * meanwhile included (the COPY text is made while the COPY runs, then the rollups computed).
 */
async function profileIngestPhases(dir: string, pki: TestPki, batches: readonly TelemetryPayload[]): Promise<string> {
  const totals = new Map<string, number>();
  let landing = 0;
  const add = (phase: string, ms: number) => totals.set(phase, (totals.get(phase) ?? 0) + ms);
  /** Statement and transaction figures: only those of telemetry landings (not the migrations). */
  const addLanding = (phase: string, ms: number) => {
    if (landing > 0) add(phase, ms);
  };
  let transactions = 0;
  let landingBusyMs = 0;
  let busySince = 0;
  const arrivals = new WeakMap<object, number>();
  let waitMs = 0;
  let waited = 0;
  const groupSizes: number[] = [];

  const statementPhase = (sql: string): string => {
    if (sql.startsWith("COPY")) return "COPY readings";
    if (sql.includes("INSERT INTO gateways")) return "gateway, meters, rollup locks";
    if (sql.includes("WITH b AS")) return "stored readings lookup (for batches not continuing a series)";
    if (sql.includes("INSERT INTO consumption_hourly")) return "rollups + outages";
    return "other statements";
  };
  const timed = (tx: SqlExecutor): SqlExecutor => {
    const wrapped: SqlExecutor = {
      query: async (sql, params) => {
        const t0 = performance.now();
        try {
          return await tx.query(sql, params);
        } finally {
          addLanding(statementPhase(sql.trimStart()), performance.now() - t0);
        }
      },
      exec: async (sql) => {
        const t0 = performance.now();
        try {
          await tx.exec(sql);
        } finally {
          addLanding("other statements", performance.now() - t0);
        }
      },
    };
    const copyFrom = tx.copyFrom?.bind(tx);
    if (copyFrom !== undefined) {
      wrapped.copyFrom = async (sql, data) => {
        const t0 = performance.now();
        try {
          return await copyFrom(sql, data);
        } finally {
          addLanding("COPY readings (its text made while it runs, then the rollups computed)", performance.now() - t0);
        }
      };
    }
    return wrapped;
  };

  const restore: (() => void)[] = [];
  const patch = <T extends object, K extends keyof T>(target: T, key: K, replacement: (original: T[K]) => T[K]) => {
    const original = target[key];
    target[key] = replacement(original);
    restore.push(() => {
      target[key] = original;
    });
  };
  patch(
    PgSqlClient.prototype,
    "transaction",
    (original) =>
      async function transaction<R>(this: PgSqlClient, fn: (tx: SqlExecutor) => Promise<R>): Promise<R> {
        const t0 = performance.now();
        let fnEnd = t0;
        try {
          return await original.call<PgSqlClient, [(tx: SqlExecutor) => Promise<R>], Promise<R>>(
            this,
            async (tx: SqlExecutor) => {
              const fnStart = performance.now();
              addLanding("connect + BEGIN", fnStart - t0);
              try {
                return await fn(timed(tx));
              } finally {
                fnEnd = performance.now();
              }
            },
          );
        } finally {
          addLanding("COMMIT", performance.now() - fnEnd);
          if (landing > 0) transactions++;
        }
      } as PgSqlClient["transaction"],
  );
  patch(
    PostgresStore.prototype,
    "landTelemetry",
    (original) =>
      async function landTelemetry(this: PostgresStore, payload: TelemetryPayload, receivedAt: Date) {
        const t0 = performance.now();
        // Busy while at least one landing runs (gateways land side by side).
        if (landing++ === 0) busySince = t0;
        try {
          return await original.call(this, payload, receivedAt);
        } finally {
          const end = performance.now();
          if (--landing === 0) landingBusyMs += end - busySince;
          add("(landTelemetry total)", end - t0);
        }
      },
  );
  patch(
    IngestService.prototype,
    "precheck",
    (original) =>
      function precheck(this: IngestService, message: IncomingMessage): IncomingMessage {
        const t0 = performance.now();
        const checked = original.call(this, message);
        add("JSON.parse + schema check (on arrival)", performance.now() - t0);
        if (checked.checked !== undefined) arrivals.set(checked.checked, performance.now());
        return checked;
      },
  );
  patch(
    IngestService.prototype,
    "landTogether",
    (original) =>
      function landTogether(this: IngestService, messages: readonly IncomingMessage[]) {
        const now = performance.now();
        groupSizes.push(messages.length);
        for (const message of messages) {
          const arrived = message.checked === undefined ? undefined : arrivals.get(message.checked);
          if (arrived !== undefined) {
            waitMs += now - arrived;
            waited++;
          }
        }
        return original.call(this, messages);
      },
  );
  let wallMs: number;
  try {
    wallMs = (await ingestRound(dir, pki, batches, 0)).ingestMs;
  } finally {
    for (const undo of restore.reverse()) undo();
  }
  // JSON.parse alone, on the same payloads, to split the arrival check.
  const texts = batches.map((b) => Buffer.from(JSON.stringify(b)));
  const parseStarted = performance.now();
  for (const text of texts) JSON.parse(text.toString("utf8"));
  const parseMs = performance.now() - parseStarted;

  const per100k = (ms: number) => ((ms * 100_000) / TOTAL).toFixed(0).padStart(6);
  const store = totals.get("(landTelemetry total)") ?? 0;
  const inTransactions = [...totals.entries()]
    .filter(([phase]) => phase !== "(landTelemetry total)" && !phase.startsWith("JSON"))
    .reduce((sum, [, ms]) => sum + ms, 0);
  const check = totals.get("JSON.parse + schema check (on arrival)") ?? 0;
  const lines = [
    `ingest phases, ms per 100,000 readings (one instrumented round, ${INGEST_CONNECTIONS} connections, ` +
      `${transactions} transactions, ${(TOTAL / Math.max(transactions, 1)).toFixed(0)} readings each on average; ` +
      `groups of ${Math.min(...groupSizes)}-${Math.max(...groupSizes)} messages; the phases of landings that ` +
      "ran side by side add up, so they can sum to more than the wall time):",
    `  ${per100k(parseMs)}  JSON.parse (on arrival, while the previous group lands)`,
    `  ${per100k(check - parseMs)}  schema check (on arrival)`,
    `  ${per100k(store - inTransactions)}  store: group by meter and sort, month partitions (before the transaction)`,
  ];
  for (const [phase, ms] of totals) {
    if (phase === "(landTelemetry total)" || phase.startsWith("JSON")) continue;
    lines.push(`  ${per100k(ms)}  ${phase}`);
  }
  lines.push(
    `  ${per100k(wallMs - landingBusyMs)}  no landing running: MQTT receive, PUBACK, waiting for the next group's messages`,
    `  ${per100k(wallMs)}  wall time, from the first publish to the last commit`,
    `  a message waited ${(waitMs / Math.max(waited, 1)).toFixed(1)} ms on average between its arrival and its group's landing`,
  );
  return lines.join("\n");
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
    `ingest (${GATEWAYS} gateways × ${METERS} meters, ${INGEST_CONNECTIONS} connections): ${Math.round(ingest.readingsPerSecond)} readings/s through MQTT; COPY: ${Math.round(ingest.copyPerSecond)} rows/s ` +
      `(medians of ${INGEST_ROUNDS} rounds; ratios ${ingest.ratios.map((r) => r.toFixed(3)).join(", ")})`,
  );
  const api = await benchApi();
  console.log(
    `api: /consumption/daily p50 ${api.p50Ms} ms, p99 ${api.p99Ms} ms; hello-world p50 ${api.helloP50Ms} ms, p99 ${api.helloP99Ms} ms (${CONNECTIONS} connections, ${DURATION_S} s)`,
  );
  console.log(
    JSON.stringify({
      bench: "cloud",
      ingestRatio: Number(ingest.ratio.toFixed(3)),
      readingsPerSecond: Math.round(ingest.readingsPerSecond),
      ingestConnections: INGEST_CONNECTIONS,
      ingestGateways: GATEWAYS,
      p50Ms: api.p50Ms,
      p99Ms: api.p99Ms,
      p99RatioToHelloWorld: Number((api.p99Ms / Math.max(api.helloP99Ms, 1)).toFixed(2)),
    }),
  );
} finally {
  temp.remove();
}
