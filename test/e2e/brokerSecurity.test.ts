/**
 * Who may talk to the cloud, and what happens to bad payloads, on both brokers:
 * - a client whose certificate comes from another CA, and one with no certificate at all,
 *   cannot connect; nothing of theirs lands;
 * - a gateway cannot publish under another gateway's topic root;
 * - a malformed payload and a payload whose gatewayId differs from its topic are kept in the
 *   rejected-messages table with the reason and counted, and ingest keeps landing good ones.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { type TelemetryPayload, topicFor } from "@edgemeter/shared";
import { requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mosquittoAvailable } from "../support/mosquitto.js";
import { makeForeignCa, makeTestPki, type TestPki } from "../support/pki.js";
import { stopAllProcesses } from "../support/processes.js";
import { type ApiClient, type BrokerKind, startCloudStack, type TlsFiles } from "../support/stack.js";

const hasMosquitto = requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto");

function telemetry(gatewayId: string, meterId: string, seq: number): TelemetryPayload {
  const ts = new Date(Date.now() - 1000).toISOString();
  return {
    v: 1,
    gatewayId,
    batchId: randomUUID(),
    sentAt: new Date().toISOString(),
    readings: [{ meterId, seq, ts, clock: "synced", values: { voltageL1V: 231.5, importEnergyKwh: 12.5 } }],
  };
}

/** Connects with the given TLS identity; resolves the client, or rejects with the connection error. */
function connect(
  url: string,
  protocolVersion: 4 | 5,
  clientId: string,
  tls: Partial<TlsFiles>,
): Promise<mqtt.MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, {
      protocolVersion,
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      rejectUnauthorized: true,
      ...(tls.caFile === undefined ? {} : { ca: readFileSync(tls.caFile) }),
      ...(tls.certFile === undefined ? {} : { cert: readFileSync(tls.certFile) }),
      ...(tls.keyFile === undefined ? {} : { key: readFileSync(tls.keyFile) }),
    });
    client.once("connect", () => resolve(client));
    client.once("error", (error) => {
      client.end(true);
      reject(error);
    });
    client.once("close", () => reject(new Error("connection closed before CONNACK")));
  });
}

/** Publishes QoS1; resolves with the PUBACK reason code (0 under MQTT 3.1.1), or "closed" when the broker hung up. */
function publish(client: mqtt.MqttClient, topic: string, payload: string | Buffer): Promise<number | "closed"> {
  return new Promise((resolve) => {
    const onClose = () => resolve("closed");
    client.once("close", onClose);
    client.publish(topic, payload, { qos: 1 }, (error, packet) => {
      client.off("close", onClose);
      if (error !== undefined && error !== null) {
        const code = (error as { code?: number }).code;
        resolve(typeof code === "number" ? code : "closed");
      } else resolve((packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0);
    });
  });
}

describe.each(["embedded", "mosquitto"] as const)("broker security and bad input (%s broker)", (broker: BrokerKind) => {
  const skip = broker === "mosquitto" && !hasMosquitto;
  const dir = tempDir(`security-${broker}`);
  let pki: TestPki;
  let foreign: TlsFiles;
  let api: ApiClient;
  let brokerUrl: string;
  let protocolVersion: 4 | 5;

  beforeAll(async () => {
    if (skip) return;
    pki = await makeTestPki(dir.dir, {
      gateways: ["gw-good", "gw-other"],
      servers: ["localhost"],
      clients: ["cloud-ingest"],
    });
    foreign = await makeForeignCa(`${dir.dir}/foreign`, "gw-good");
    const stack = await startCloudStack({ dir: dir.dir, pki, broker });
    ({ api, brokerUrl, protocolVersion } = stack);
  }, 120_000);

  afterAll(async () => {
    await stopAllProcesses();
    dir.remove();
  });

  it.skipIf(skip)("refuses a certificate from another CA and a client without a certificate", async () => {
    const trusted = { caFile: pki.caFile };
    // Same CN as a real gateway, signed by a CA the broker does not trust.
    await expect(connect(brokerUrl, protocolVersion, "gw-good", { ...foreign, caFile: pki.caFile })).rejects.toThrow();
    await expect(connect(brokerUrl, protocolVersion, "gw-good", trusted)).rejects.toThrow();
    const meters = await api.get<{ items: { meterId: string }[] }>("/v1/meters");
    expect(meters.body.items.map((m) => m.meterId)).not.toContain("meter-intruder");
  });

  it.skipIf(skip)("keeps a gateway out of another gateway's topics", async () => {
    const client = await connect(brokerUrl, protocolVersion, "gw-good", pki.gateway("gw-good"));
    const result = await publish(
      client,
      topicFor("telemetry", "gw-other"),
      JSON.stringify(telemetry("gw-other", "meter-spoof", 1)),
    );
    // MQTT 5 (Mosquitto): PUBACK 135 "not authorized". MQTT 3.1.1 (Aedes): the broker hangs up, no PUBACK.
    expect(result === "closed" || (typeof result === "number" && result >= 0x80)).toBe(true);
    client.end(true);
    // A good message afterwards proves ingest is running, so the absence below means refusal.
    const good = await connect(brokerUrl, protocolVersion, "gw-other", pki.gateway("gw-other"));
    expect(
      await publish(good, topicFor("telemetry", "gw-other"), JSON.stringify(telemetry("gw-other", "meter-real", 1))),
    ).toBe(0);
    good.end();
    await waitFor(async () => {
      const { body } = await api.get<{ items: { meterId: string }[] }>("/v1/meters");
      return body.items.some((m) => m.meterId === "meter-real") ? true : undefined;
    }, "meter-real to land");
    const { body } = await api.get<{ items: { meterId: string }[] }>("/v1/meters");
    expect(body.items.map((m) => m.meterId)).not.toContain("meter-spoof");
  });

  it.skipIf(skip)("stores malformed and mismatched payloads as rejected, counts them, and keeps landing", async () => {
    const client = await connect(brokerUrl, protocolVersion, "gw-good", pki.gateway("gw-good"));
    const topic = topicFor("telemetry", "gw-good");
    expect(await publish(client, topic, "{not json")).toBe(0);
    expect(await publish(client, topic, JSON.stringify({ v: 1, gatewayId: "gw-good", readings: "none" }))).toBe(0);
    expect(await publish(client, topic, JSON.stringify(telemetry("gw-other", "meter-x", 5)))).toBe(0);
    expect(await publish(client, topic, JSON.stringify(telemetry("gw-good", "meter-good", 7)))).toBe(0);
    client.end();

    const rejected = await waitFor(async () => {
      const { status, body } = await api.get<{ items: { topic: string; reason: string }[] }>("/v1/rejected-messages");
      return status === 200 && body.items.length >= 3 ? body.items : undefined;
    }, "three rejected messages");
    const reasons = rejected.map((r) => r.reason).join("\n");
    expect(reasons).toMatch(/JSON/i);
    expect(reasons).toMatch(/readings/);
    expect(reasons).toMatch(/gw-other/);
    for (const r of rejected) expect(r.topic).toBe(topic);

    await waitFor(async () => {
      const { body } = await api.get<{ items: { meterId: string }[] }>("/v1/meters");
      return body.items.some((m) => m.meterId === "meter-good") ? true : undefined;
    }, "the good batch to land after the bad ones");
    const { body } = await api.get<{ items: { meterId: string }[] }>("/v1/meters");
    expect(body.items.map((m) => m.meterId)).not.toContain("meter-x");
  });
});
