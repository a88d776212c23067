/**
 * Proves the Mosquitto test helper enforces what a site broker must: mutual TLS with the
 * edgemeter CA, the certificate CN as identity, and a gateway confined to its own topic
 * root, with MQTT 5 telling the publisher (PUBACK 135) rather than dropping silently.
 */
import { readFileSync } from "node:fs";
import { requireService, tempDir } from "@edgemeter/shared/testing";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mosquittoAvailable, type RunningMosquitto, startMosquitto } from "../support/mosquitto.js";
import { makeForeignCa, makeTestPki, readTlsCredentials, type TestPki, type TlsFiles } from "../support/pki.js";

const available = requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto");
const INGEST_SHARE = "$share/edgemeter-ingest/edgemeter/v1/gw/+/telemetry";

type Outcome = { connected: true; client: MqttClient } | { connected: false; error: Error };

/** Connects once (no reconnect) and reports whether the broker accepted the session. */
function connect(url: string, options: IClientOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
    let settled = false;
    const settle = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      if (!outcome.connected) client.end(true);
      resolve(outcome);
    };
    client.once("connect", () => settle({ connected: true, client }));
    client.once("error", (error) => settle({ connected: false, error }));
    client.once("close", () => settle({ connected: false, error: new Error("connection closed before CONNACK") }));
  });
}

/** mqtt.js types the PUBACK as a generic Packet; MQTT 5 PUBACKs carry `reasonCode` (absent means 0, success). */
function pubackReasonCode(packet: unknown): number {
  return (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
}

async function connectOrThrow(url: string, options: IClientOptions): Promise<MqttClient> {
  const outcome = await connect(url, options);
  if (!outcome.connected) throw outcome.error;
  return outcome.client;
}

describe.skipIf(!available)("Mosquitto test broker with mutual TLS", () => {
  const temp = tempDir("mosquitto-tls");
  let pki: TestPki;
  let foreign: TlsFiles;
  let broker: RunningMosquitto;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    pki = await makeTestPki(temp.dir, { gateways: ["gw-01", "gw-02"], clients: ["cloud-ingest"] });
    foreign = await makeForeignCa(temp.dir, "gw-01");
    broker = await startMosquitto({ dir: temp.dir, pki, tls: true });
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.endAsync(true)));
    await broker?.stop();
    temp.remove();
  });

  async function open(name: string, kind: "gateway" | "client"): Promise<MqttClient> {
    const files = kind === "gateway" ? pki.gateway(name) : pki.client(name);
    const client = await connectOrThrow(broker.url, {
      ...readTlsCredentials(files),
      clientId: `${name}-${clients.length}`,
    });
    clients.push(client);
    return client;
  }

  it("delivers a gateway's publish under its own root to the cloud's shared subscription", async () => {
    const ingest = await open("cloud-ingest", "client");
    const received: { topic: string; payload: string }[] = [];
    ingest.on("message", (topic, payload) => received.push({ topic, payload: payload.toString("utf8") }));
    const granted = await ingest.subscribeAsync(INGEST_SHARE, { qos: 1 });
    expect(granted.map((grant) => grant.qos)).toEqual([1]);

    const gateway = await open("gw-01", "gateway");
    const ack = await gateway.publishAsync("edgemeter/v1/gw/gw-01/telemetry", '{"hello":1}', { qos: 1 });
    expect(pubackReasonCode(ack)).toBeLessThan(0x80);

    await expect
      .poll(() => received, { timeout: 10_000 })
      .toEqual([{ topic: "edgemeter/v1/gw/gw-01/telemetry", payload: '{"hello":1}' }]);
  });

  it("answers PUBACK 135 to a gateway publishing under another gateway's root, and delivers nothing", async () => {
    const ingest = await open("cloud-ingest", "client");
    const topics: string[] = [];
    ingest.on("message", (topic) => topics.push(topic));
    await ingest.subscribeAsync("edgemeter/v1/gw/#", { qos: 1 });

    const gateway = await open("gw-01", "gateway");
    const denied = await gateway.publishAsync("edgemeter/v1/gw/gw-02/telemetry", "{}", { qos: 1 }).then(
      () => undefined,
      (error: Error & { code?: number }) => error,
    );
    expect(denied?.code).toBe(135);

    // A publish allowed after the denied one: once it arrives, the denied one would have too.
    await gateway.publishAsync("edgemeter/v1/gw/gw-01/events", "{}", { qos: 1 });
    await expect.poll(() => topics.includes("edgemeter/v1/gw/gw-01/events"), { timeout: 10_000 }).toBe(true);
    expect(topics).not.toContain("edgemeter/v1/gw/gw-02/telemetry");
  });

  it("refuses a certificate from another CA, even with a real gateway's CN", async () => {
    const outcome = await connect(broker.url, {
      ...readTlsCredentials(foreign),
      // Trust the right broker: only the client certificate is foreign.
      ca: readFileSync(pki.caFile),
      clientId: "impostor",
    });
    expect(outcome.connected).toBe(false);
    // The TLS layer refused it (TLS 1.3 alert 48 "unknown ca"; 1.2 may say "bad certificate").
    expect(outcome.connected ? "" : outcome.error.message).toMatch(
      /unknown ca|bad certificate|certificate verify failed/,
    );
  });

  it("refuses a client without a certificate", async () => {
    const outcome = await connect(broker.url, { ca: readFileSync(pki.caFile), clientId: "anonymous" });
    expect(outcome.connected).toBe(false);
    // TLS 1.3 alert 116 "certificate required"; TLS 1.2 answers "handshake failure".
    expect(outcome.connected ? "" : outcome.error.message).toMatch(/certificate required|handshake failure/);
  });

  it("comes back on the same port after restart()", async () => {
    const portBefore = broker.port;
    await broker.restart();
    expect(broker.port).toBe(portBefore);
    const gateway = await open("gw-02", "gateway");
    const ack = await gateway.publishAsync("edgemeter/v1/gw/gw-02/status", "online", { qos: 1, retain: true });
    expect(pubackReasonCode(ack)).toBeLessThan(0x80);
  });
});
