/**
 * The Uplink contract (issue 4, req. 4), one suite run against both adapters — mqtt.js
 * (MqttUplink) and the AWS IoT Device SDK v2's MQTT 5 client (AwsIotUplink) — against a real
 * Mosquitto 2 with mutual TLS and the site ACL (a gateway may publish only under its own root).
 */
import path from "node:path";
import {
  AwsIotUplink,
  Forwarder,
  MqttUplink,
  type NewReading,
  SqliteOutbox,
  silentLogger,
  type Uplink,
} from "@edgemeter/gateway";
import { EdgemeterError, StatusPayload, TelemetryPayload, topicFor } from "@edgemeter/shared";
import { requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mosquittoAvailable, type RunningMosquitto, startMosquitto } from "../support/mosquitto.js";
import { makeTestPki, readTlsCredentials, type TestPki } from "../support/pki.js";

const available = requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto");

type UplinkFactory = (gatewayId: string, broker: RunningMosquitto, pki: TestPki) => Uplink;

const ADAPTERS: Record<string, UplinkFactory> = {
  "mqtt.js (MqttUplink)": (gatewayId, broker, pki) =>
    new MqttUplink({
      gatewayId,
      url: broker.url.replace("127.0.0.1", "localhost"),
      protocolVersion: 5,
      clientId: gatewayId,
      keepaliveS: 30,
      reconnectPeriodMs: 200,
      reconnectCapMs: 2_000,
      stablePeriodMs: 10_000,
      connectTimeoutMs: 3_000,
      tls: pki.gateway(gatewayId),
      version: "contract",
      statusFacts: () => ({ bufferedReadings: 7, oldestUnsentTs: null }),
      logger: silentLogger(),
    }),
  "aws-iot-device-sdk-v2 MQTT 5 (AwsIotUplink)": (gatewayId, broker, pki) =>
    new AwsIotUplink({
      gatewayId,
      host: "localhost",
      port: broker.port,
      clientId: gatewayId,
      keepaliveS: 30,
      reconnectPeriodMs: 200,
      reconnectCapMs: 2_000,
      stablePeriodMs: 10_000,
      tls: pki.gateway(gatewayId),
      version: "contract",
      statusFacts: () => ({ bufferedReadings: 7, oldestUnsentTs: null }),
      logger: silentLogger(),
    }),
};

const GATEWAYS = ["gw-c-mqttjs", "gw-c-aws"];

describe.skipIf(!available)("Uplink contract against Mosquitto with mutual TLS", () => {
  const temp = tempDir("uplink-contract");
  let pki: TestPki;
  let broker: RunningMosquitto;
  let observer: MqttClient;
  const received: { topic: string; payload: Buffer; retain: boolean }[] = [];

  beforeAll(async () => {
    pki = await makeTestPki(temp.dir, { gateways: GATEWAYS, servers: ["localhost"], clients: ["cloud-ingest"] });
    broker = await startMosquitto({ dir: temp.dir, pki, cloudClientName: "cloud-ingest" });
    observer = await mqtt.connectAsync(broker.url.replace("127.0.0.1", "localhost"), {
      protocolVersion: 5,
      clientId: "cloud-ingest",
      ...readTlsCredentials(pki.client("cloud-ingest")),
    });
    observer.on("message", (topic, payload, packet) => received.push({ topic, payload, retain: packet.retain }));
    await observer.subscribeAsync("edgemeter/v1/gw/#", { qos: 1 });
  });
  afterAll(async () => {
    await observer?.endAsync(true);
    await broker?.stop();
    temp.remove();
  });

  Object.entries(ADAPTERS).forEach(([name, make], index) => {
    const gatewayId = GATEWAYS[index] as string;
    describe(name, () => {
      const cleanups: Array<() => Promise<unknown> | unknown> = [];
      afterEach(async () => {
        for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
      });
      async function connected(): Promise<Uplink> {
        const uplink = make(gatewayId, broker, pki);
        cleanups.push(() => uplink.close(500));
        await uplink.connect();
        await waitFor(() => (uplink.state === "connected" ? true : undefined), `${name} connected`);
        return uplink;
      }
      const messagesOn = (topic: string) => received.filter((m) => m.topic === topic);

      it("refuses to publish before it is connected (uplink.disconnected), without queueing", async () => {
        const uplink = make(gatewayId, broker, pki);
        await expect(uplink.publish(topicFor("telemetry", gatewayId), Buffer.from("{}"), { qos: 1 })).rejects.toSatisfy(
          (e: unknown) => e instanceof EdgemeterError && e.code === "uplink.disconnected",
        );
        await uplink.close(100);
      });

      it("publishes a retained online status with the certificate expiry, and resolves a publish on its PUBACK", async () => {
        const statusTopic = topicFor("status", gatewayId);
        const before = messagesOn(statusTopic).length;
        const uplink = await connected();
        const status = await waitFor(() => {
          const latest = messagesOn(statusTopic).slice(before).at(-1);
          return latest === undefined ? undefined : StatusPayload.parse(JSON.parse(latest.payload.toString()));
        }, "online status");
        expect(status).toMatchObject({ state: "online", gatewayId, version: "contract", bufferedReadings: 7 });
        expect(Date.parse(status.certificateExpiresAt ?? "")).toBeGreaterThan(Date.now());
        expect(uplink.status?.()).toMatchObject({ state: "connected", problem: null });

        const topic = topicFor("telemetry", gatewayId);
        await uplink.publish(topic, Buffer.from(`{"contract":"${name}"}`), { qos: 1 });
        await waitFor(
          () => (messagesOn(topic).some((m) => m.payload.toString().includes(name)) ? true : undefined),
          "the publish at the subscriber",
        );
      });

      it("rejects a publish the broker's ACL denies (PUBACK 135) as uplink.rejected and stays connected", async () => {
        const uplink = await connected();
        const foreignTopic = topicFor("telemetry", "gw-someone-else");
        const error = await uplink.publish(foreignTopic, Buffer.from("{}"), { qos: 1 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(EdgemeterError);
        expect(error).toMatchObject({ code: "uplink.rejected", retryable: false, context: { reasonCode: 135 } });
        expect(uplink.state).toBe("connected");
      });

      it("says offline (retained) on close", async () => {
        const statusTopic = topicFor("status", gatewayId);
        const uplink = await connected();
        const before = messagesOn(statusTopic).length;
        await uplink.close(1_000);
        expect(uplink.state).toBe("closed");
        const offline = await waitFor(() => {
          const latest = messagesOn(statusTopic).slice(before).at(-1);
          return latest === undefined ? undefined : StatusPayload.parse(JSON.parse(latest.payload.toString()));
        }, "offline status");
        expect(offline.state).toBe("offline");
      });

      it("reconnects by itself after a broker restart, and a forwarder drains an outbox through it", async () => {
        const uplink = await connected();
        await broker.restart();
        // The observer reconnects too (mqtt.js default reconnect); wait for both sides.
        await waitFor(() => (uplink.state === "connected" ? true : undefined), "uplink reconnected", 20_000);
        await waitFor(() => (observer.connected ? true : undefined), "observer reconnected", 20_000);
        await observer.subscribeAsync("edgemeter/v1/gw/#", { qos: 1 });

        const outbox = new SqliteOutbox({ file: path.join(temp.dir, `${gatewayId}-outbox.sqlite`) });
        cleanups.push(() => outbox.close());
        const readings: NewReading[] = Array.from({ length: 120 }, (_, i) => ({
          meterId: "m1",
          ts: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
          clock: "synced",
          values: { voltageL1V: 230, importEnergyKwh: i },
        }));
        outbox.append(readings);
        const forwarder = new Forwarder({
          gatewayId,
          outbox,
          uplink,
          maxBatchReadings: 25,
          maxBatchBytes: 100_000,
          idleFlushMs: 200,
          logger: silentLogger(),
        });
        forwarder.start();
        cleanups.push(() => forwarder.stop(500));
        await waitFor(() => (outbox.depth() === 0 ? true : undefined), "outbox drained");
        const topic = topicFor("telemetry", gatewayId);
        const seqs = await waitFor(() => {
          const all = messagesOn(topic)
            .filter((m) => m.payload.toString().startsWith('{"v":1'))
            .flatMap((m) => TelemetryPayload.parse(JSON.parse(m.payload.toString())).readings.map((r) => r.seq));
          return new Set(all).size >= 120 ? [...new Set(all)].sort((a, b) => a - b) : undefined;
        }, "120 readings at the subscriber");
        expect(seqs).toEqual(Array.from({ length: 120 }, (_, i) => i));
      });
    });
  });
});
