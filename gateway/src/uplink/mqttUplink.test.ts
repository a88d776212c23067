import { randomUUID } from "node:crypto";
import { EdgemeterError, StatusPayload, topicFor } from "@edgemeter/shared";
import { freePort, probeTcp, requireService, waitFor } from "@edgemeter/shared/testing";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import { mosquittoBinary, startMosquitto, type TestBroker } from "../testing/mosquitto.js";
import { MqttUplink, type MqttUplinkOptions } from "./mqttUplink.js";
import type { UplinkState } from "./uplink.js";

const BROKER_URL = "mqtt://127.0.0.1:1883";
const brokerUp = await probeTcp("127.0.0.1", 1883);
const haveBroker = requireService("Mosquitto at 127.0.0.1:1883", brokerUp, "apt install mosquitto");
const haveMosquittoBinary = requireService("the mosquitto binary", mosquittoBinary() !== null, "apt install mosquitto");

function uplinkOptions(gatewayId: string, url: string): MqttUplinkOptions {
  return {
    gatewayId,
    url,
    protocolVersion: 5,
    clientId: gatewayId,
    keepaliveS: 30,
    reconnectPeriodMs: 200,
    connectTimeoutMs: 2_000,
    version: "9.9.9-test",
    statusFacts: () => ({ bufferedReadings: 42, oldestUnsentTs: "2026-01-01T00:00:00.000Z" }),
    logger: silentLogger(),
  };
}

/** Collects messages on `topic` from a separate subscriber connection. */
async function subscribe(url: string, topic: string): Promise<{ client: MqttClient; messages: Buffer[] }> {
  const client = await connectAsync(url, { protocolVersion: 5, clientId: `sub-${randomUUID()}` });
  const messages: Buffer[] = [];
  client.on("message", (received, payload) => {
    if (received === topic) messages.push(payload);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, messages };
}

describe.runIf(haveBroker)("MqttUplink against Mosquitto (MQTT 5)", () => {
  const gatewayId = `gw-uplink-${randomUUID().slice(0, 8)}`;
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    // Remove the retained status this test left on the shared broker.
    const client = await connectAsync(BROKER_URL, { protocolVersion: 5 });
    await client.publishAsync(topicFor("status", gatewayId), "", { qos: 1, retain: true });
    await client.endAsync();
  });

  it("publishes a retained online status on connect, resolves publishes on PUBACK, and says offline on close", async () => {
    const status = await subscribe(BROKER_URL, topicFor("status", gatewayId));
    cleanups.push(() => status.client.endAsync());
    const telemetry = await subscribe(BROKER_URL, topicFor("telemetry", gatewayId));
    cleanups.push(() => telemetry.client.endAsync());

    const uplink = new MqttUplink(uplinkOptions(gatewayId, BROKER_URL));
    const states: UplinkState[] = [];
    uplink.on("state", (state) => states.push(state));
    await uplink.connect();
    await waitFor(() => (uplink.state === "connected" ? true : undefined), "uplink connected");

    const online = StatusPayload.parse(
      JSON.parse((await waitFor(() => status.messages[0], "online status")).toString()),
    );
    expect(online).toMatchObject({ gatewayId, state: "online", version: "9.9.9-test", bufferedReadings: 42 });
    expect(online.oldestUnsentTs).toBe("2026-01-01T00:00:00.000Z");

    const payload = Buffer.from(JSON.stringify({ hello: "world" }));
    await uplink.publish(topicFor("telemetry", gatewayId), payload, { qos: 1 });
    expect((await waitFor(() => telemetry.messages[0], "telemetry message")).equals(payload)).toBe(true);

    await uplink.close();
    expect(uplink.state).toBe("closed");
    const offline = StatusPayload.parse(
      JSON.parse((await waitFor(() => status.messages[1], "offline status")).toString()),
    );
    expect(offline.state).toBe("offline");
    expect(states).toEqual(["connecting", "connected", "closed"]);
  });

  it("refuses to publish while the broker is unreachable, with a retryable uplink.disconnected", async () => {
    const closedPort = await freePort();
    const uplink = new MqttUplink(uplinkOptions(gatewayId, `mqtt://127.0.0.1:${closedPort}`));
    cleanups.push(() => uplink.close(100));
    const states: UplinkState[] = [];
    uplink.on("state", (state) => states.push(state));
    await uplink.connect();
    await waitFor(() => (states.includes("disconnected") ? true : undefined), "a failed connection attempt");
    const error = await uplink.publish(topicFor("telemetry", gatewayId), Buffer.from("x"), { qos: 1 }).catch((e) => e);
    expect(error).toBeInstanceOf(EdgemeterError);
    expect((error as EdgemeterError).code).toBe("uplink.disconnected");
    expect((error as EdgemeterError).retryable).toBe(true);
    expect(states).not.toContain("connected");
  });
});

describe.runIf(haveMosquittoBinary)("MqttUplink against a Mosquitto whose ACL denies a topic", () => {
  const gatewayId = "gw-acl";
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startMosquitto([`topic readwrite edgemeter/v1/gw/${gatewayId}/status`]);
  });
  afterAll(async () => {
    await broker.stop();
  });

  it("MQTT 5: a PUBACK with reason code 135 rejects with a permanent uplink.rejected", async () => {
    const uplink = new MqttUplink(uplinkOptions(gatewayId, broker.url));
    try {
      await uplink.connect();
      await waitFor(() => (uplink.state === "connected" ? true : undefined), "uplink connected");
      // Allowed topic, retained: acknowledged normally (a retained message is kept even with no subscriber).
      await uplink.publish(topicFor("status", gatewayId), Buffer.from("{}"), { qos: 1, retain: true });
      // Allowed, not retained, nobody subscribed: PUBACK 16 means delivered to nobody, so not a success.
      const nobody = await uplink
        .publish(topicFor("status", gatewayId), Buffer.from("{}"), { qos: 1 })
        .catch((e: unknown) => e);
      expect(nobody).toMatchObject({ code: "uplink.noSubscribers", retryable: true, context: { reasonCode: 16 } });
      const error = await uplink
        .publish(topicFor("telemetry", gatewayId), Buffer.from("{}"), { qos: 1 })
        .catch((e) => e);
      expect(error).toBeInstanceOf(EdgemeterError);
      expect((error as EdgemeterError).code).toBe("uplink.rejected");
      expect((error as EdgemeterError).retryable).toBe(false);
      expect((error as EdgemeterError).context.reasonCode).toBe(135);
      // The connection survives a denied publish.
      expect(uplink.state).toBe("connected");
    } finally {
      await uplink.close();
    }
  });
});
