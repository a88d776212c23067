import { randomBytes } from "node:crypto";
import { topicFor } from "@edgemeter/shared";
import { freePort, probeTcp, requireService, waitFor } from "@edgemeter/shared/testing";
import mqtt from "mqtt";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import { flakyStore } from "./flakyStore.js";
import { IngestService } from "./ingestService.js";
import { MqttIngest, type MqttIngestOptions } from "./mqttIngest.js";

/** The plain Mosquitto of the test machine (MQTT 5). Topics are fixed, so ids are unique per run. */
const BROKER_URL = "mqtt://127.0.0.1:1883";
const RUN = randomBytes(4).toString("hex");
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
const PAGE = { limit: 100, offset: 0 };

function batch(gatewayId: string, meterId: string, seq: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      gatewayId,
      batchId: `b${seq}`,
      sentAt: "2026-11-22T10:00:01.000Z",
      readings: [
        { meterId, seq, ts: `2026-11-22T10:00:0${seq}.000Z`, clock: "synced", values: { voltageL1V: 230 + seq } },
      ],
    }),
  );
}

async function publish(topic: string, payload: Buffer): Promise<void> {
  const client = await mqtt.connectAsync(BROKER_URL, {
    protocolVersion: 5,
    clientId: `test-pub-${RUN}-${Math.random()}`,
  });
  try {
    await client.publishAsync(topic, payload, { qos: 1 });
  } finally {
    await client.endAsync();
  }
}

/** Ends a persistent session the test created, so the broker does not queue for it afterwards. */
async function forgetSession(clientId: string, protocolVersion: 4 | 5): Promise<void> {
  const client = await mqtt.connectAsync(BROKER_URL, {
    protocolVersion,
    clientId,
    clean: true,
    ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}),
  });
  await client.endAsync();
}

describe("MqttIngest against Mosquitto", () => {
  let available = false;
  let store: PostgresStore;
  const clientIds: [string, 4 | 5][] = [];

  beforeAll(async () => {
    available = requireService("Mosquitto", await probeTcp("127.0.0.1", 1883), "expected plain MQTT at 127.0.0.1:1883");
    store = new PostgresStore({ sql: await PgliteSqlClient.open(), logger });
    await store.migrate();
  });
  afterAll(async () => {
    await store.close();
    if (available) for (const [clientId, version] of clientIds) await forgetSession(clientId, version);
  });

  function ingestFor(
    handler: IngestService,
    protocolVersion: 4 | 5,
    name: string,
    extra: Partial<MqttIngestOptions> = {},
  ): MqttIngest {
    const clientId = `test-ingest-${name}-${RUN}`;
    clientIds.push([clientId, protocolVersion]);
    return new MqttIngest({
      url: BROKER_URL,
      protocolVersion,
      clientId,
      // A group per test: Mosquitto hands a share of the group's messages to every member's
      // session, including the offline persistent sessions earlier tests leave behind.
      shareGroup: `edgemeter-ingest-test-${name}-${RUN}`,
      sessionExpirySec: 60,
      handler,
      logger,
      reconnectDelayMs: 200,
      ...extra,
    });
  }

  const readingsOf = (meterId: string) => store.readings(meterId, new Date(0), new Date("2100-01-01Z"), PAGE);

  it("MQTT 5 shared subscription: a published batch lands and a bad one is rejected", async (context) => {
    if (!available) context.skip();
    const gatewayId = `gw-v5-${RUN}`;
    const ingest = new IngestService({ store, logger });
    const mqttIngest = ingestFor(ingest, 5, "v5");
    expect(mqttIngest.topics).toEqual([
      `$share/edgemeter-ingest-test-v5-${RUN}/edgemeter/v1/gw/+/telemetry`,
      `$share/edgemeter-ingest-test-v5-${RUN}/edgemeter/v1/gw/+/events`,
      `$share/edgemeter-ingest-test-v5-${RUN}/edgemeter/v1/gw/+/status`,
    ]);
    await mqttIngest.start();
    try {
      await publish(topicFor("telemetry", gatewayId), Buffer.from("{oops"));
      await publish(topicFor("telemetry", gatewayId), batch(gatewayId, `m-v5-${RUN}`, 1));
      const rows = await waitFor(async () => {
        const found = await readingsOf(`m-v5-${RUN}`);
        return found.length > 0 ? found : undefined;
      }, "the batch to land");
      expect(rows[0]).toMatchObject({ gatewayId, seq: 1, values: { voltageL1V: 231 } });
      const rejected = (await store.listRejected(PAGE)).filter((r) => r.topic === topicFor("telemetry", gatewayId));
      expect(rejected).toHaveLength(1);
      expect(rejected[0]?.reason).toMatch(/^invalid JSON/);
    } finally {
      await mqttIngest.stop();
    }
  });

  it("does not acknowledge a batch whose commit failed: the broker redelivers it and it lands once", async (context) => {
    if (!available) context.skip();
    const gatewayId = `gw-retry-${RUN}`;
    const failures = { remaining: 2 };
    const ingest = new IngestService({ store: flakyStore(store, failures, gatewayId), logger });
    const mqttIngest = ingestFor(ingest, 5, "retry");
    await mqttIngest.start();
    try {
      await publish(topicFor("telemetry", gatewayId), batch(gatewayId, `m-retry-${RUN}`, 2));
      await waitFor(
        async () => ((await readingsOf(`m-retry-${RUN}`)).length > 0 ? true : undefined),
        "the redelivered batch",
      );
      expect(failures.remaining).toBe(0);
      // Counters are for everything on the shared test broker; only this gateway's batches fail.
      expect(ingest.stats().retryableFailures).toBe(2);
      expect(await readingsOf(`m-retry-${RUN}`)).toHaveLength(1);
    } finally {
      await mqttIngest.stop();
    }
  });

  it("a restarted instance (same client id, clean: false) receives what was published while it was down", async (context) => {
    if (!available) context.skip();
    const gatewayId = `gw-queued-${RUN}`;
    const first = ingestFor(new IngestService({ store, logger }), 5, "queued");
    await first.start();
    await first.stop();
    await publish(topicFor("telemetry", gatewayId), batch(gatewayId, `m-queued-${RUN}`, 3));
    expect(await readingsOf(`m-queued-${RUN}`)).toHaveLength(0);

    const second = new MqttIngest({
      url: BROKER_URL,
      protocolVersion: 5,
      clientId: `test-ingest-queued-${RUN}`,
      shareGroup: `edgemeter-ingest-test-queued-${RUN}`,
      sessionExpirySec: 60,
      handler: new IngestService({ store, logger }),
      logger,
    });
    await second.start();
    try {
      await waitFor(
        async () => ((await readingsOf(`m-queued-${RUN}`)).length > 0 ? true : undefined),
        "the queued batch",
      );
    } finally {
      await second.stop();
    }
  });

  it("MQTT 3.1.1 (the embedded broker's protocol): plain subscription, acknowledged after landing", async (context) => {
    if (!available) context.skip();
    const gatewayId = `gw-v4-${RUN}`;
    const failures = { remaining: 1 };
    const ingest = new IngestService({ store: flakyStore(store, failures, gatewayId), logger });
    const mqttIngest = ingestFor(ingest, 4, "v4");
    expect(mqttIngest.topics).toEqual([
      "edgemeter/v1/gw/+/telemetry",
      "edgemeter/v1/gw/+/events",
      "edgemeter/v1/gw/+/status",
    ]);
    await mqttIngest.start();
    try {
      await publish(topicFor("telemetry", gatewayId), batch(gatewayId, `m-v4-${RUN}`, 4));
      await waitFor(
        async () => ((await readingsOf(`m-v4-${RUN}`)).length > 0 ? true : undefined),
        "the batch over 3.1.1",
      );
      // The first attempt failed and was redelivered over 3.1.1 too.
      expect(failures.remaining).toBe(0);
      expect(ingest.stats().retryableFailures).toBe(1);
      expect(await readingsOf(`m-v4-${RUN}`)).toHaveLength(1);
    } finally {
      await mqttIngest.stop();
    }
  });

  it("several connections in the shared group land messages concurrently, each exactly once", async (context) => {
    if (!available) context.skip();
    const gatewayId = `gw-multi-${RUN}`;
    const inner = new IngestService({ store, logger });
    // Holds each message until a second one is being landed too (or 5 s passed): with one
    // message in flight per instance (mqtt.js alone) the peak stays at 1 and the test fails.
    const gauge = { active: 0, peak: 0 };
    let release: () => void = () => {};
    const secondArrived = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handler = {
      async handle(topic: string, payload: Buffer) {
        gauge.active += 1;
        gauge.peak = Math.max(gauge.peak, gauge.active);
        if (gauge.active >= 2) release();
        try {
          await Promise.race([secondArrived, new Promise((resolve) => setTimeout(resolve, 5_000))]);
          return await inner.handle(topic, payload);
        } finally {
          gauge.active -= 1;
        }
      },
    };
    const mqttIngest = ingestFor(inner, 5, "multi", { handler, connections: 3 });
    expect(mqttIngest.clientIds).toEqual([
      `test-ingest-multi-${RUN}`,
      `test-ingest-multi-${RUN}-c2`,
      `test-ingest-multi-${RUN}-c3`,
    ]);
    for (const clientId of mqttIngest.clientIds.slice(1)) clientIds.push([clientId, 5]);
    await mqttIngest.start();
    try {
      const meterId = `m-multi-${RUN}`;
      await Promise.all(
        [1, 2, 3, 4, 5, 6].map((seq) => publish(topicFor("telemetry", gatewayId), batch(gatewayId, meterId, seq))),
      );
      await waitFor(async () => ((await readingsOf(meterId)).length === 6 ? true : undefined), "six batches");
      expect(gauge.peak).toBeGreaterThanOrEqual(2);
      expect((await readingsOf(meterId)).map((r) => r.seq).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      await mqttIngest.stop();
    }
  });

  it("refuses several connections under MQTT 3.1.1 (no shared subscription)", async () => {
    const mqttIngest = new MqttIngest({
      url: BROKER_URL,
      protocolVersion: 4,
      clientId: `test-ingest-v4multi-${RUN}`,
      connections: 2,
      handler: new IngestService({ store, logger }),
      logger,
    });
    await expect(mqttIngest.start()).rejects.toMatchObject({ code: "config.invalid" });
  });

  it("start() fails with a retryable ingest.connect error naming the broker when none answers", async () => {
    const port = await freePort();
    const mqttIngest = new MqttIngest({
      url: `mqtt://127.0.0.1:${port}`,
      protocolVersion: 5,
      clientId: `test-ingest-nobroker-${RUN}`,
      handler: new IngestService({ store, logger }),
      logger,
      connectTimeoutMs: 1_000,
    });
    const error = await mqttIngest.start().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "ingest.connect", retryable: true });
    expect((error as Error).message).toContain(`mqtt://127.0.0.1:${port}`);
    expect((error as Error).message).toContain("ECONNREFUSED");
    await mqttIngest.stop();
  });
});
