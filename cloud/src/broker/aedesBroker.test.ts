import { readFileSync } from "node:fs";
import { findBinary, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import { connect, type IClientOptions, type MqttClient } from "mqtt";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedBroker, startEmbeddedBroker } from "./aedesBroker.js";
import { createTestAuthority, type TestCertificate } from "./testing/testCertificates.js";

const hasOpenssl = requireService("openssl", findBinary("openssl") !== null, "install the openssl CLI");

interface Received {
  topic: string;
  text: string;
  retain: boolean;
}

type Attempt = { client: MqttClient; refusal: null } | { client: MqttClient; refusal: string };

describe.runIf(hasOpenssl)("embedded Aedes broker (mTLS, per-certificate ACL)", () => {
  const pki = tempDir("aedes-pki");
  let caPem: Buffer;
  let broker: EmbeddedBroker;
  let brokerFiles: { caFile: string; certFile: string; keyFile: string };
  const certs: Record<string, TestCertificate> = {};
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    const ca = createTestAuthority(pki.dir, "edge");
    const foreign = createTestAuthority(pki.dir, "foreign");
    const server = ca.issueServer("server");
    certs.gw1 = ca.issueClient("gw-1", { cn: "gw-1", ou: "gateway" });
    certs.gw2 = ca.issueClient("gw-2", { cn: "gw-2", ou: "gateway" });
    certs.ingest = ca.issueClient("cloud-ingest", { cn: "cloud-ingest", ou: "service" });
    certs.operator = ca.issueClient("operator", { cn: "ops", ou: "operator" });
    certs.revoked = ca.issueClient("gw-revoked", { cn: "gw-revoked", ou: "gateway" });
    certs.foreignGw1 = foreign.issueClient("foreign-gw-1", { cn: "gw-1", ou: "gateway" });
    const crlFile = ca.revoke(certs.revoked);
    caPem = readFileSync(ca.caFile);
    brokerFiles = { caFile: ca.caFile, certFile: server.certFile, keyFile: server.keyFile };
    broker = await startEmbeddedBroker({
      host: "127.0.0.1",
      port: 0,
      ...brokerFiles,
      crlFile,
      logger: pino({ level: "silent" }),
    });
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.end(true);
  });

  afterAll(async () => {
    await broker?.close();
    pki.remove();
  });

  /** Connects and reports either the connected client or why the broker refused it. */
  function attempt(
    cert: TestCertificate | null,
    clientId: string,
    extra: Partial<IClientOptions> = {},
    port = broker.port,
  ): Promise<Attempt> {
    const client = connect(`mqtts://127.0.0.1:${port}`, {
      protocolVersion: 4, // Aedes 1.2 speaks MQTT 3.1.1 only
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ca: caPem,
      ...(cert === null ? {} : { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) }),
      ...extra,
    });
    clients.push(client);
    return new Promise((resolve) => {
      client.once("connect", () => resolve({ client, refusal: null }));
      client.once("error", (error) => resolve({ client, refusal: error.message }));
      client.once("close", () => resolve({ client, refusal: "connection closed" }));
    });
  }

  async function connected(cert: TestCertificate, clientId: string, extra: Partial<IClientOptions> = {}) {
    const result = await attempt(cert, clientId, extra);
    if (result.refusal !== null) throw new Error(`${clientId} could not connect: ${result.refusal}`);
    return result.client;
  }

  async function subscriber(filter: string): Promise<Received[]> {
    const client = await connected(certs.ingest as TestCertificate, `cloud-ingest-${clients.length}`);
    const received: Received[] = [];
    client.on("message", (topic, payload, packet) =>
      received.push({ topic, text: payload.toString(), retain: packet.retain }),
    );
    await client.subscribeAsync(filter, { qos: 1 });
    return received;
  }

  function closed(client: MqttClient): Promise<void> {
    return new Promise((resolve) => {
      if (client.disconnected || !client.connected) resolve();
      else client.once("close", () => resolve());
    });
  }

  it("delivers a gateway's publish under its own root to the service subscriber", async () => {
    const received = await subscriber("edgemeter/v1/gw/+/telemetry");
    const gw = await connected(certs.gw1 as TestCertificate, "gw-1");
    await gw.publishAsync("edgemeter/v1/gw/gw-1/telemetry", '{"batch":1}', { qos: 1 });
    const message = await waitFor(() => received.find((m) => m.text === '{"batch":1}'), "telemetry at the subscriber");
    expect(message.topic).toBe("edgemeter/v1/gw/gw-1/telemetry");
  });

  it("disconnects a gateway publishing under another gateway's root, without a PUBACK, and drops the message", async () => {
    const received = await subscriber("edgemeter/v1/gw/#");
    const gw1 = await connected(certs.gw1 as TestCertificate, "gw-1");
    let acknowledged = false;
    gw1.publish("edgemeter/v1/gw/gw-2/telemetry", "forged", { qos: 1 }, (error) => {
      if (!error) acknowledged = true;
    });
    await closed(gw1);
    gw1.end(true);

    // A later message from the rightful gateway arrives; the forged one never did.
    const gw2 = await connected(certs.gw2 as TestCertificate, "gw-2");
    await gw2.publishAsync("edgemeter/v1/gw/gw-2/telemetry", "genuine", { qos: 1 });
    await waitFor(() => received.find((m) => m.text === "genuine"), "gw-2's own message");
    expect(received.map((m) => m.text)).not.toContain("forged");
    expect(acknowledged).toBe(false);
  });

  it("lets a service subscribe but not publish, and a gateway subscribe only below its root", async () => {
    const received = await subscriber("edgemeter/v1/gw/#");
    const service = await connected(certs.ingest as TestCertificate, "cloud-ingest-pub");
    service.publish("edgemeter/v1/gw/gw-1/telemetry", "from-service", { qos: 1 });
    await closed(service);

    // The MQTT username is ignored: only the certificate decides.
    const gw = await connected(certs.gw1 as TestCertificate, "gw-1", { username: "cloud-ingest" });
    await expect(gw.subscribeAsync("edgemeter/v1/gw/#", { qos: 1 })).rejects.toMatchObject({
      packet: { granted: [128] },
    });
    await expect(gw.subscribeAsync("edgemeter/v1/gw/gw-2/commands", { qos: 1 })).rejects.toMatchObject({
      packet: { granted: [128] },
    });
    const own = await gw.subscribeAsync("edgemeter/v1/gw/gw-1/commands", { qos: 1 });
    expect(own[0]?.qos).toBe(1);

    await gw.publishAsync("edgemeter/v1/gw/gw-1/events", "after", { qos: 1 });
    await waitFor(() => received.find((m) => m.text === "after"), "gw-1's event");
    expect(received.map((m) => m.text)).not.toContain("from-service");
  });

  it("refuses an MQTT 5 CONNECT: clients must use protocolVersion 4 with this broker", async () => {
    const result = await attempt(certs.gw1 as TestCertificate, "gw-1", { protocolVersion: 5 });
    expect(result.refusal).toMatch(/protocol version/i);
  });

  it("refuses a gateway connecting with a clientId other than its CN", async () => {
    const result = await attempt(certs.gw1 as TestCertificate, "gw-2");
    expect(result.refusal).toMatch(/Identifier rejected/i);
  });

  it("refuses clients without a certificate, with a foreign CA's, a revoked one, or an unknown OU", async () => {
    const none = await attempt(null, "gw-1");
    expect(none.refusal).not.toBeNull();
    const foreign = await attempt(certs.foreignGw1 as TestCertificate, "gw-1");
    expect(foreign.refusal).not.toBeNull();
    const revoked = await attempt(certs.revoked as TestCertificate, "gw-revoked");
    expect(revoked.refusal).not.toBeNull();
    const operator = await attempt(certs.operator as TestCertificate, "ops");
    expect(operator.refusal).toMatch(/Not authorized/i);

    // Control: without the CRL the same certificate is accepted, so the refusal above was the CRL's doing.
    const withoutCrl = await startEmbeddedBroker({
      host: "127.0.0.1",
      port: 0,
      ...brokerFiles,
      logger: pino({ level: "silent" }),
    });
    try {
      const accepted = await attempt(certs.revoked as TestCertificate, "gw-revoked", {}, withoutCrl.port);
      expect(accepted.refusal).toBeNull();
      accepted.client.end(true);
    } finally {
      await withoutCrl.close();
    }

    // The broker is still healthy for a legitimate gateway.
    const good = await attempt(certs.gw1 as TestCertificate, "gw-1");
    expect(good.refusal).toBeNull();
  });

  it("keeps a retained status for later subscribers and publishes the last will when a gateway vanishes", async () => {
    const offline = JSON.stringify({ v: 1, gatewayId: "gw-1", state: "offline" });
    const online = JSON.stringify({ v: 1, gatewayId: "gw-1", state: "online", ts: "2026-03-10T12:00:00.000Z" });
    const gw = await connected(certs.gw1 as TestCertificate, "gw-1", {
      will: { topic: "edgemeter/v1/gw/gw-1/status", payload: Buffer.from(offline), qos: 1, retain: true },
    });
    await gw.publishAsync("edgemeter/v1/gw/gw-1/status", online, { qos: 1, retain: true });

    const received = await subscriber("edgemeter/v1/gw/+/status");
    const retained = await waitFor(() => received.find((m) => m.text === online), "the retained online status");
    expect(retained.retain).toBe(true);

    gw.stream.destroy(); // vanishes without DISCONNECT, as on a power cut
    const will = await waitFor(() => received.find((m) => m.text === offline), "the last will");
    expect(will.topic).toBe("edgemeter/v1/gw/gw-1/status");
  });

  it("drops a last will aimed outside the gateway's root", async () => {
    const received = await subscriber("edgemeter/v1/gw/#");
    const gw = await connected(certs.gw1 as TestCertificate, "gw-1", {
      will: { topic: "edgemeter/v1/gw/gw-2/status", payload: Buffer.from("forged-will"), qos: 1, retain: false },
    });
    gw.stream.destroy();
    await closed(gw);

    const gw2 = await connected(certs.gw2 as TestCertificate, "gw-2");
    await gw2.publishAsync("edgemeter/v1/gw/gw-2/events", "marker", { qos: 1 });
    await waitFor(() => received.find((m) => m.text === "marker"), "gw-2's marker");
    expect(received.map((m) => m.text)).not.toContain("forged-will");
  });
});

describe.runIf(hasOpenssl)("embedded Aedes broker configuration errors", () => {
  it("names the unreadable file", async () => {
    await expect(
      startEmbeddedBroker({
        host: "127.0.0.1",
        port: 0,
        caFile: "/nonexistent/ca.pem",
        certFile: "/nonexistent/server.pem",
        keyFile: "/nonexistent/server.key",
        logger: pino({ level: "silent" }),
      }),
    ).rejects.toThrow(/\/nonexistent\/ca\.pem: cannot read the broker's caFile/);
  });
});
