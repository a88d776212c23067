import { readFileSync } from "node:fs";
import { topicFor } from "@edgemeter/shared";
import { freePort, tempDir, waitFor } from "@edgemeter/shared/testing";
import mqtt from "mqtt";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { createTestAuthority } from "./broker/testing/testCertificates.js";
import { parseCloudConfig } from "./config/cloudConfig.js";
import { type RunningCloud, startCloud } from "./main.js";

const logger = pino({ level: "silent" });

describe("startCloud with the embedded broker (single site)", () => {
  const dir = tempDir("cloud-main");
  let cloud: RunningCloud | null = null;
  afterAll(async () => {
    await cloud?.close();
    dir.remove();
  });

  it("a gateway publishing over mTLS lands its batch; a payload claiming another gateway is rejected", async () => {
    const ca = createTestAuthority(dir.dir, "site");
    const server = ca.issueServer("broker");
    const service = ca.issueClient("cloud-ingest", { cn: "cloud-ingest", ou: "service" });
    const gateway = ca.issueClient("gw-site-1", { cn: "gw-site-1", ou: "gateway" });
    const brokerPort = await freePort();
    const config = parseCloudConfig(
      JSON.stringify({
        dataDir: "./data",
        broker: { host: "127.0.0.1", port: brokerPort, caFile: ca.caFile, ...server },
        mqtt: {
          url: `mqtts://127.0.0.1:${brokerPort}`,
          protocolVersion: 4,
          caFile: ca.caFile,
          ...service,
          clientId: "cloud-ingest-1",
        },
        api: { host: "127.0.0.1", port: 0 },
      }),
      `${dir.dir}/cloud.yaml`,
      {},
    );
    cloud = await startCloud(config, logger);
    expect(cloud.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(cloud.brokerPort).toBe(brokerPort);

    const publisher = await mqtt.connectAsync(`mqtts://127.0.0.1:${brokerPort}`, {
      protocolVersion: 4,
      clientId: "gw-site-1",
      ca: readFileSync(ca.caFile),
      cert: readFileSync(gateway.certFile),
      key: readFileSync(gateway.keyFile),
    });
    const reading = {
      meterId: "site-m1",
      seq: 1,
      ts: "2026-11-22T10:00:00.000Z",
      clock: "synced",
      values: { currentL1A: 4.2 },
    };
    const batch = (gatewayId: string) =>
      JSON.stringify({ v: 1, gatewayId, batchId: "b1", sentAt: "2026-11-22T10:00:01.000Z", readings: [reading] });
    await publisher.publishAsync(topicFor("telemetry", "gw-site-1"), batch("gw-other"), { qos: 1 });
    await publisher.publishAsync(topicFor("telemetry", "gw-site-1"), batch("gw-site-1"), { qos: 1 });
    await publisher.endAsync();

    const store = cloud.store;
    const rows = await waitFor(async () => {
      const found = await store.readings("site-m1", new Date(0), new Date("2100-01-01Z"), { limit: 10, offset: 0 });
      return found.length > 0 ? found : undefined;
    }, "the gateway's batch");
    expect(rows).toEqual([expect.objectContaining({ gatewayId: "gw-site-1", values: { currentL1A: 4.2 } })]);
    expect(cloud.ingest?.stats()).toMatchObject({ landed: 1, rejected: 1 });
    const [rejected] = await store.listRejected({ limit: 1, offset: 0 });
    expect(rejected?.reason).toBe('gatewayId "gw-other" differs from topic gateway "gw-site-1"');
  });
});
