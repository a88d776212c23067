import { randomUUID } from "node:crypto";
import path from "node:path";
import { StatusPayload, topicFor } from "@edgemeter/shared";
import { probeTcp, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import { connectAsync } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import type { NewReading } from "../outbox/outbox.js";
import { SqliteOutbox } from "../outbox/sqliteOutbox.js";
import { MqttUplink } from "./mqttUplink.js";
import { outboxStatusFacts } from "./statusReport.js";

const BROKER_URL = "mqtt://127.0.0.1:1883";
const haveBroker = requireService(
  "Mosquitto at 127.0.0.1:1883",
  await probeTcp("127.0.0.1", 1883),
  "apt install mosquitto",
);

/** One reading per meter every 10 s for `hours`, two meters, from `startMs`. */
function outage(hours: number, startMs = Date.UTC(2026, 0, 1)): NewReading[] {
  const out: NewReading[] = [];
  for (let s = 0; s < hours * 3_600; s += 10) {
    for (const meterId of ["meter-a", "meter-b"]) {
      out.push({
        meterId,
        ts: new Date(startMs + s * 1_000).toISOString(),
        clock: "synced",
        values: { voltageL1V: 230, currentL1A: 5, activePowerW: 1_150, importEnergyKwh: 1_000 + s / 3_600 },
      });
    }
  }
  return out;
}

describe("the status payload's disk-cap counts", () => {
  it("parses a status from before the counts existed, and one with them", () => {
    const old = { v: 1, gatewayId: "gw-1", state: "online", ts: "2026-01-01T00:00:00.000Z", bufferedReadings: 3 };
    expect(StatusPayload.parse(old)).toEqual(old);
    expect(StatusPayload.parse({ ...old, thinnedReadings: 1_234, droppedReadings: 0 })).toMatchObject({
      thinnedReadings: 1_234,
      droppedReadings: 0,
    });
    expect(() => StatusPayload.parse({ ...old, droppedReadings: -1 })).toThrow();
  });

  describe.runIf(haveBroker)("published retained by the uplink (Mosquitto at 127.0.0.1:1883)", () => {
    const cleanups: Array<() => unknown> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    it("match what the disk cap removed during an outage, and follow it while connected", async () => {
      const gatewayId = `gw-cap-${randomUUID().slice(0, 8)}`;
      const temp = tempDir("status-cap");
      cleanups.push(temp.remove);
      const outbox = new SqliteOutbox({ file: path.join(temp.dir, "outbox.sqlite"), capBytes: 400 * 1_024 });
      cleanups.push(() => outbox.close());
      // A long outage with a tiny cap: detail is thinned before anything is dropped.
      const first = outage(6);
      for (let i = 0; i < first.length; i += 20) outbox.append(first.slice(i, i + 20));
      const afterOutage = outbox.stats();
      expect(afterOutage.thinnedReadings).toBeGreaterThan(0);
      expect(afterOutage.thinnedReadings + afterOutage.droppedReadings + afterOutage.depth).toBe(first.length);

      const statuses: StatusPayload[] = [];
      const subscriber = await connectAsync(BROKER_URL, { protocolVersion: 5, clientId: `sub-${randomUUID()}` });
      cleanups.push(async () => {
        // Leave no retained status behind on the shared broker.
        await subscriber.publishAsync(topicFor("status", gatewayId), "", { qos: 1, retain: true });
        await subscriber.endAsync();
      });
      subscriber.on("message", (_topic, payload) => {
        if (payload.length > 0) statuses.push(StatusPayload.parse(JSON.parse(payload.toString())));
      });
      await subscriber.subscribeAsync(topicFor("status", gatewayId), { qos: 1 });

      const uplink = new MqttUplink({
        gatewayId,
        url: BROKER_URL,
        protocolVersion: 5,
        clientId: gatewayId,
        keepaliveS: 30,
        reconnectPeriodMs: 200,
        version: "test",
        ...outboxStatusFacts(outbox),
        statusRefreshMs: 50,
        logger: silentLogger(),
      });
      cleanups.push(() => uplink.close(200));
      await uplink.connect();
      const online = await waitFor(() => statuses.find((s) => s.state === "online"), "the online status");
      expect(online).toMatchObject({
        thinnedReadings: afterOutage.thinnedReadings,
        droppedReadings: afterOutage.droppedReadings,
        bufferedReadings: afterOutage.depth,
      });

      // More data than the cap while connected (the broker up, the backlog not sent): the
      // retained status follows the counters without waiting for a reconnect.
      const second = outage(6, Date.UTC(2026, 0, 1) + 6 * 3_600_000);
      for (let i = 0; i < second.length; i += 20) outbox.append(second.slice(i, i + 20));
      const now = outbox.stats();
      expect(now.thinnedReadings + now.droppedReadings).toBeGreaterThan(
        afterOutage.thinnedReadings + afterOutage.droppedReadings,
      );
      const updated = await waitFor(
        () =>
          statuses.find((s) => s.thinnedReadings === now.thinnedReadings && s.droppedReadings === now.droppedReadings),
        "a status with the new counts",
      );
      expect(now.thinnedReadings + now.droppedReadings + now.depth).toBe(first.length + second.length);
      expect(updated.state).toBe("online");

      // Retained: whoever subscribes later (the cloud after a restart) gets the latest counts.
      const late = await connectAsync(BROKER_URL, { protocolVersion: 5, clientId: `late-${randomUUID()}` });
      cleanups.push(() => late.endAsync());
      const retained: StatusPayload[] = [];
      late.on("message", (_topic, payload) => retained.push(StatusPayload.parse(JSON.parse(payload.toString()))));
      await late.subscribeAsync(topicFor("status", gatewayId), { qos: 1 });
      const last = await waitFor(() => retained[0], "the retained status");
      expect(last).toMatchObject({ thinnedReadings: now.thinnedReadings, droppedReadings: now.droppedReadings });
    });
  });
});
