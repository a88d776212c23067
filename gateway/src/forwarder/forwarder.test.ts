import { randomUUID } from "node:crypto";
import path from "node:path";
import { EventsPayload, MAX_PAYLOAD_BYTES, TelemetryPayload, topicFor } from "@edgemeter/shared";
import { freePort, probeTcp, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import { connectAsync } from "mqtt";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import type { NewReading } from "../outbox/outbox.js";
import { SqliteOutbox } from "../outbox/sqliteOutbox.js";
import { mosquittoBinary, startMosquitto } from "../testing/mosquitto.js";
import { FakeClock } from "../time/fakeClock.js";
import { MqttUplink } from "../uplink/mqttUplink.js";
import type { PublishOptions, Uplink } from "../uplink/uplink.js";
import { Forwarder, type ForwarderOptions, mergeRanges, telemetryFrame } from "./forwarder.js";

const BROKER_URL = "mqtt://127.0.0.1:1883";
const haveBroker = requireService(
  "Mosquitto at 127.0.0.1:1883",
  await probeTcp("127.0.0.1", 1883),
  "apt install mosquitto",
);
const haveMosquittoBinary = requireService("the mosquitto binary", mosquittoBinary() !== null, "apt install mosquitto");

function readings(count: number, meterId = "meter-1"): NewReading[] {
  return Array.from({ length: count }, (_, i) => ({
    meterId,
    ts: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    clock: "synced" as const,
    values: { voltageL1V: 230 + i / 100, currentL1A: 5.5, importEnergyKwh: 1_000 + i / 1_000 },
  }));
}

/**
 * Wraps the real uplink to record the outbox depth at the moment each publish is
 * acknowledged, before the forwarder reacts: proof that nothing was deleted earlier.
 */
class DepthRecordingUplink implements Uplink {
  readonly depthsAtAck: number[] = [];
  constructor(
    private readonly inner: Uplink,
    private readonly outbox: SqliteOutbox,
  ) {}
  get state() {
    return this.inner.state;
  }
  connect() {
    return this.inner.connect();
  }
  async publish(topic: string, payload: Uint8Array, options: PublishOptions) {
    await this.inner.publish(topic, payload, options);
    this.depthsAtAck.push(this.outbox.depth());
  }
  on(event: "state", listener: Parameters<Uplink["on"]>[1]) {
    return this.inner.on(event, listener);
  }
  close(deadlineMs?: number) {
    return this.inner.close(deadlineMs);
  }
}

function uplinkFor(gatewayId: string, url: string) {
  return new MqttUplink({
    gatewayId,
    url,
    protocolVersion: 5,
    clientId: `${gatewayId}-${randomUUID().slice(0, 6)}`,
    keepaliveS: 30,
    reconnectPeriodMs: 200,
    connectTimeoutMs: 2_000,
    version: "test",
    statusFacts: () => ({ bufferedReadings: 0, oldestUnsentTs: null }),
    logger: silentLogger(),
  });
}

describe("Forwarder with a real SQLite outbox and a real broker", () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  function openOutbox(): SqliteOutbox {
    const { dir, remove } = tempDir("forwarder");
    const outbox = new SqliteOutbox({ file: path.join(dir, "outbox.sqlite") });
    cleanups.push(remove, () => outbox.close());
    return outbox;
  }
  function startForwarder(options: Omit<ForwarderOptions, "logger" | "idleFlushMs"> & { idleFlushMs?: number }) {
    const forwarder = new Forwarder({
      idleFlushMs: 200,
      logger: silentLogger(),
      backoffBaseMs: 50,
      backoffCapMs: 200,
      ...options,
    });
    forwarder.start();
    cleanups.push(() => forwarder.stop(500));
    return forwarder;
  }

  describe.runIf(haveBroker)("Mosquitto at 127.0.0.1:1883, MQTT 5", () => {
    const gatewayId = `gw-fwd-${randomUUID().slice(0, 8)}`;
    afterAll(async () => {
      const client = await connectAsync(BROKER_URL, { protocolVersion: 5 });
      await client.publishAsync(topicFor("status", gatewayId), "", { qos: 1, retain: true });
      await client.endAsync();
    });

    it("publishes valid telemetry batches in seq order within the limits and deletes readings only after the ack", async () => {
      const subscriber = await connectAsync(BROKER_URL, { protocolVersion: 5 });
      cleanups.push(() => subscriber.endAsync());
      const payloads: TelemetryPayload[] = [];
      const sizes: number[] = [];
      subscriber.on("message", (_topic, message) => {
        sizes.push(message.length);
        payloads.push(TelemetryPayload.parse(JSON.parse(message.toString())));
      });
      await subscriber.subscribeAsync(topicFor("telemetry", gatewayId), { qos: 1 });

      const outbox = openOutbox();
      // Stored before the uplink exists: the outbox is written first, whatever the network does.
      outbox.append(readings(25));
      const uplink = new DepthRecordingUplink(uplinkFor(gatewayId, BROKER_URL), outbox);
      cleanups.push(() => uplink.close(200));
      // Window of 1: strictly one batch after the other, so the depth at each PUBACK is exact.
      const forwarder = startForwarder({
        gatewayId,
        outbox,
        uplink,
        maxBatchReadings: 10,
        maxBatchBytes: 100_000,
        windowBatches: 1,
        ackFlushMs: 0,
      });
      await uplink.connect();

      await waitFor(() => (payloads.length === 3 ? true : undefined), "three batches");
      await waitFor(() => (outbox.depth() === 0 ? true : undefined), "outbox drained");
      expect(payloads.map((p) => p.readings.length)).toEqual([10, 10, 5]);
      expect(payloads.flatMap((p) => p.readings.map((r) => r.seq))).toEqual(Array.from({ length: 25 }, (_, i) => i));
      expect(payloads.map((p) => p.batchId)).toEqual(["s0-9", "s10-19", "s20-24"]);
      expect(payloads.every((p) => p.gatewayId === gatewayId)).toBe(true);
      expect(payloads[0]?.readings[3]).toMatchObject({ meterId: "meter-1", values: readings(4)[3]?.values });
      expect(Math.max(...sizes)).toBeLessThanOrEqual(100_000);
      // At each PUBACK the batch was still in the outbox: 25 before the first, 15, then 5.
      expect(uplink.depthsAtAck).toEqual([25, 15, 5]);
      expect(forwarder.stats()).toMatchObject({ publishedBatches: 3, publishedReadings: 25, failedBatches: 0 });

      // An append wakes the idle forwarder.
      outbox.append(readings(1, "meter-2"));
      await waitFor(() => (payloads.length === 4 ? true : undefined), "batch after append");
      expect(payloads[3]?.readings.map((r) => [r.meterId, r.seq])).toEqual([["meter-2", 25]]);
    });

    it("splits by bytes so that every payload stays under maxBatchBytes", async () => {
      const subscriber = await connectAsync(BROKER_URL, { protocolVersion: 5 });
      cleanups.push(() => subscriber.endAsync());
      const sizes: number[] = [];
      subscriber.on("message", (_topic, message) => {
        TelemetryPayload.parse(JSON.parse(message.toString()));
        sizes.push(message.length);
      });
      await subscriber.subscribeAsync(topicFor("telemetry", gatewayId), { qos: 1 });
      const outbox = openOutbox();
      outbox.append(readings(200));
      const uplink = uplinkFor(gatewayId, BROKER_URL);
      cleanups.push(() => uplink.close(200));
      startForwarder({ gatewayId, outbox, uplink, maxBatchReadings: 500, maxBatchBytes: 4_096 });
      await uplink.connect();
      await waitFor(() => (outbox.depth() === 0 ? true : undefined), "outbox drained");
      expect(sizes.length).toBeGreaterThan(1);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(4_096);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    });
  });

  it.runIf(haveMosquittoBinary)(
    "sends fault events ahead of a telemetry backlog and drains the backlog with a window of batches in seq order",
    async () => {
      const gatewayId = "gw-events";
      const broker = await startMosquitto(["topic readwrite #"]);
      cleanups.push(() => broker.stop());
      const subscriber = await connectAsync(broker.url, { protocolVersion: 5 });
      cleanups.push(() => subscriber.endAsync());
      const arrivals: Array<{ kind: "telemetry" | "events"; seqs: number[]; eventIds: string[] }> = [];
      subscriber.on("message", (topic, message) => {
        const body = JSON.parse(message.toString());
        if (topic.endsWith("/events")) {
          const payload = EventsPayload.parse(body);
          arrivals.push({ kind: "events", seqs: [], eventIds: payload.events.map((e) => e.eventId) });
        } else if (topic.endsWith("/telemetry")) {
          const payload = TelemetryPayload.parse(body);
          arrivals.push({ kind: "telemetry", seqs: payload.readings.map((r) => r.seq), eventIds: [] });
        }
      });
      await subscriber.subscribeAsync(`edgemeter/v1/gw/${gatewayId}/+`, { qos: 1 });

      const outbox = openOutbox();
      outbox.append(readings(1_000)); // the backlog of an outage
      const event = {
        eventId: "evt-1",
        meterId: "meter-1",
        kind: "voltageSag" as const,
        state: "start" as const,
        phase: "L1" as const,
        value: 180,
        threshold: 207,
        ts: "2026-01-01T00:20:00.000Z",
        durationMs: null,
        clock: "synced" as const,
      };
      outbox.appendEvents([event]); // raised after the backlog was stored
      outbox.appendEvents([event]); // the same fault seen again (a restart) is stored once
      const uplink = uplinkFor(gatewayId, broker.url);
      cleanups.push(() => uplink.close(200));
      const forwarder = startForwarder({ gatewayId, outbox, uplink, maxBatchReadings: 50, maxBatchBytes: 100_000 });
      await uplink.connect();
      await waitFor(() => (outbox.depth() === 0 ? true : undefined), "backlog drained");
      await waitFor(
        () => (arrivals.filter((a) => a.kind === "telemetry").length === 20 ? true : undefined),
        "all 20 batches",
      );
      expect(arrivals[0]).toMatchObject({ kind: "events", eventIds: ["evt-1"] });
      expect(arrivals.filter((a) => a.kind === "events")).toHaveLength(1);
      // In a window the PUBACKs may come in any order, but the broker forwards in publish order.
      expect(arrivals.flatMap((a) => a.seqs)).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
      expect(forwarder.stats()).toMatchObject({ publishedEvents: 1, publishedBatches: 20, failedBatches: 0 });
      expect(outbox.stats().pendingEvents).toBe(0);
      expect(outbox.recentEvents(10)).toEqual([event]); // kept for the status page
    },
  );

  it.runIf(haveMosquittoBinary)(
    "drains a large backlog in full-size batches (reused payload buffers) with every reading once, in seq order",
    async () => {
      const gatewayId = "gw-drain";
      const broker = await startMosquitto(["topic readwrite #"]);
      cleanups.push(() => broker.stop());
      const subscriber = await connectAsync(broker.url, { protocolVersion: 5 });
      cleanups.push(() => subscriber.endAsync());
      const received: TelemetryPayload[] = [];
      subscriber.on("message", (_topic, message) =>
        received.push(TelemetryPayload.parse(JSON.parse(message.toString()))),
      );
      await subscriber.subscribeAsync(topicFor("telemetry", gatewayId), { qos: 1 });
      const outbox = openOutbox();
      // Eight meters, 750 readings each (readings() stamps one second apart per meter).
      const stored = outbox.append(Array.from({ length: 8 }, (_, m) => readings(750, `meter-${m}`)).flat());
      const uplink = uplinkFor(gatewayId, broker.url);
      cleanups.push(() => uplink.close(200));
      const forwarder = startForwarder({ gatewayId, outbox, uplink, maxBatchReadings: 500, maxBatchBytes: 40_000 });
      await uplink.connect();
      await waitFor(() => (forwarder.stats().publishedReadings === 6_000 ? true : undefined), "all acknowledged");
      // Acknowledged readings are deleted after the drain (ackFlushMs), not one batch at a time.
      await waitFor(() => (outbox.depth() === 0 ? true : undefined), "outbox empty");
      await waitFor(() => (received.length === forwarder.stats().publishedBatches ? true : undefined), "all delivered");
      expect(received.length).toBeGreaterThan(20); // batches of ~16-40 KB: the pooled path
      expect(received.flatMap((p) => p.readings)).toEqual(stored);
      for (const payload of received) {
        expect(payload.batchId).toBe(`s${payload.readings[0]?.seq}-${payload.readings.at(-1)?.seq}`);
      }
    },
  );

  it.runIf(haveMosquittoBinary)(
    "holds unsynced readings (and everything after them) until they are re-stamped, then sends them in seq order",
    async () => {
      const gatewayId = "gw-hold";
      const broker = await startMosquitto(["topic readwrite #"]);
      cleanups.push(() => broker.stop());
      const subscriber = await connectAsync(broker.url, { protocolVersion: 5 });
      cleanups.push(() => subscriber.endAsync());
      const sent: Array<{ seq: number; clock: string; ts: string }> = [];
      subscriber.on("message", (_topic, message) => {
        for (const r of TelemetryPayload.parse(JSON.parse(message.toString())).readings)
          sent.push({ seq: r.seq, clock: r.clock, ts: r.ts });
      });
      await subscriber.subscribeAsync(topicFor("telemetry", gatewayId), { qos: 1 });

      const outbox = openOutbox();
      outbox.append(readings(2)); // synced: go at once
      const unsynced: NewReading[] = readings(3).map((r, i) => ({
        ...r,
        ts: new Date(1_000 * (i + 1)).toISOString(),
        clock: "unsynced" as const,
      }));
      const monotonic = new Map<NewReading, number>(unsynced.map((r, i) => [r, 60_000 + i * 1_000]));
      outbox.append(unsynced, { bootId: "this-boot", monotonicMsOf: (r) => monotonic.get(r) ?? 0 });
      outbox.append(readings(1, "meter-2")); // synced, but after the unsynced ones: waits with them
      let synced = false;
      const uplink = uplinkFor(gatewayId, broker.url);
      cleanups.push(() => uplink.close(200));
      const forwarder = startForwarder({
        gatewayId,
        outbox,
        uplink,
        maxBatchReadings: 100,
        maxBatchBytes: 100_000,
        hold: (r) => r.clock === "unsynced" && !synced,
      });
      await uplink.connect();
      await waitFor(() => (outbox.depth() === 4 ? true : undefined), "the synced head sent");
      expect(sent.map((r) => r.seq)).toEqual([0, 1]);

      // The clock syncs: wall - monotonic = 2026-01-01T00:00:00Z.
      expect(outbox.restamp("this-boot", Date.UTC(2026, 0, 1))).toBe(3);
      synced = true;
      forwarder.wake();
      await waitFor(() => (outbox.depth() === 0 ? true : undefined), "the rest sent");
      expect(sent.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5]);
      expect(sent.slice(2, 5)).toEqual([
        { seq: 2, clock: "synced", ts: "2026-01-01T00:01:00.000Z" },
        { seq: 3, clock: "synced", ts: "2026-01-01T00:01:01.000Z" },
        { seq: 4, clock: "synced", ts: "2026-01-01T00:01:02.000Z" },
      ]);
    },
  );

  it("deletes nothing while the broker is unreachable (a closed port)", async () => {
    const outbox = openOutbox();
    outbox.append(readings(5));
    const closedPort = await freePort();
    const uplink = uplinkFor("gw-offline", `mqtt://127.0.0.1:${closedPort}`);
    cleanups.push(() => uplink.close(100));
    const seen: string[] = [];
    uplink.on("state", (state) => seen.push(state));
    const forwarder = startForwarder({
      gatewayId: "gw-offline",
      outbox,
      uplink,
      maxBatchReadings: 10,
      maxBatchBytes: 100_000,
    });
    await uplink.connect();
    // Two failed connection attempts: the forwarder had every chance to (wrongly) drop something.
    await waitFor(
      () => (seen.filter((s) => s === "disconnected").length >= 2 ? true : undefined),
      "two failed attempts",
    );
    outbox.append(readings(1));
    expect(outbox.depth()).toBe(6);
    expect(forwarder.stats().publishedBatches).toBe(0);
  });

  it("removes delivered readings' rows while offline, and retries a failing removal after a pause, not in a loop", async () => {
    const { dir, remove } = tempDir("forwarder");
    cleanups.push(remove);
    let purgeCalls = 0;
    let failPurge = true;
    class FlakyOutbox extends SqliteOutbox {
      override purgeDelivered(maxReadings: number): number {
        purgeCalls++;
        if (failPurge) throw new Error("disk I/O error");
        return super.purgeDelivered(maxReadings);
      }
    }
    const outbox = new FlakyOutbox({ file: path.join(dir, "outbox.sqlite") });
    cleanups.push(() => outbox.close());
    outbox.append(readings(10));
    // Five delivered before a restart, five still unsent: the rows cannot be cleared whole.
    outbox.ackRanges([{ first: 0, last: 4 }]);
    expect(outbox.hasDeliveredRows()).toBe(true);
    const clock = new FakeClock();
    // Never connected: the forwarder is idle, the time to remove delivered rows.
    const uplink = uplinkFor("gw-purge", `mqtt://127.0.0.1:${await freePort()}`);
    cleanups.push(() => uplink.close(100));
    startForwarder({ gatewayId: "gw-purge", outbox, uplink, maxBatchReadings: 10, maxBatchBytes: 100_000, clock });
    await waitFor(() => (clock.pendingSleeps > 0 ? true : undefined), "the forwarder waiting");
    // A second of the forwarder's time: fifty 20 ms idle pauses, were it to retry after each.
    await clock.advance(1_000);
    expect(purgeCalls).toBe(1);
    // A minute later it tries again, and now succeeds.
    failPurge = false;
    await clock.advance(60_000);
    await waitFor(() => (outbox.hasDeliveredRows() ? undefined : true), "delivered rows removed");
    expect(purgeCalls).toBe(2);
    expect(outbox.depth()).toBe(5);
    expect(outbox.nextBatch({ maxReadings: 10, maxBytes: 100_000 }).readings.map((r) => r.seq)).toEqual([
      5, 6, 7, 8, 9,
    ]);
  });

  it.runIf(haveMosquittoBinary)("buffers while the broker is down and delivers everything once it is up", async () => {
    const gatewayId = "gw-late";
    const port = await freePort();
    const outbox = openOutbox();
    outbox.append(readings(4));
    const uplink = uplinkFor(gatewayId, `mqtt://127.0.0.1:${port}`);
    cleanups.push(() => uplink.close(100));
    const seen: string[] = [];
    uplink.on("state", (state) => seen.push(state));
    const forwarder = startForwarder({ gatewayId, outbox, uplink, maxBatchReadings: 3, maxBatchBytes: 100_000 });
    await uplink.connect();
    await waitFor(() => (seen.includes("disconnected") ? true : undefined), "a failed connection attempt");
    outbox.append(readings(2, "meter-2"));

    const broker = await startMosquitto(["topic readwrite #"], { port });
    cleanups.push(() => broker.stop());
    const subscriber = await connectAsync(broker.url, { protocolVersion: 5 });
    cleanups.push(() => subscriber.endAsync());
    const received: TelemetryPayload[] = [];
    subscriber.on("message", (_topic, message) =>
      received.push(TelemetryPayload.parse(JSON.parse(message.toString()))),
    );
    await subscriber.subscribeAsync(topicFor("telemetry", gatewayId), { qos: 1 });
    // The subscription may come up after the first batch went out: the outbox draining is the proof of delivery.
    await waitFor(() => (outbox.depth() === 0 ? true : undefined), "outbox drained after the broker came up");
    expect(forwarder.stats()).toMatchObject({ publishedReadings: 6, rejectedBatches: 0 });
  });

  it.runIf(haveMosquittoBinary)("keeps a batch the broker rejects (MQTT 5 PUBACK 135) and retries it", async () => {
    const gatewayId = "gw-denied";
    // The ACL allows the status topic only: telemetry publishes are denied.
    const broker = await startMosquitto([`topic readwrite edgemeter/v1/gw/${gatewayId}/status`]);
    cleanups.push(() => broker.stop());
    const outbox = openOutbox();
    outbox.append(readings(3));
    const uplink = uplinkFor(gatewayId, broker.url);
    cleanups.push(() => uplink.close(100));
    const forwarder = startForwarder({ gatewayId, outbox, uplink, maxBatchReadings: 10, maxBatchBytes: 100_000 });
    await uplink.connect();
    await waitFor(() => (forwarder.stats().rejectedBatches >= 2 ? true : undefined), "two rejected attempts");
    expect(outbox.depth()).toBe(3);
    expect(forwarder.stats().publishedBatches).toBe(0);
    // The connection stays up: a denial is about the topic, not the session.
    expect(uplink.state).toBe("connected");
  });
});

describe("acknowledged ranges and the telemetry frame", () => {
  it("merges ranges that touch, in any PUBACK order, and keeps gaps", () => {
    expect(
      mergeRanges([
        { first: 10, last: 19 },
        { first: 0, last: 9 },
        { first: 25, last: 30 },
        { first: 20, last: 22 },
      ]),
    ).toEqual([
      { first: 0, last: 22 },
      { first: 25, last: 30 },
    ]);
    expect(mergeRanges([])).toEqual([]);
  });

  it("frames readings as a valid telemetry payload whose batchId comes from the seqs", () => {
    const frame = telemetryFrame("gw-1", "2026-01-01T00:00:00.000Z");
    const reading = { meterId: "m1", seq: 7, ts: "2026-01-01T00:00:00.000Z", clock: "synced", values: {} };
    const json = `${frame.prefix.replaceAll(frame.placeholder, "7-7")}[${JSON.stringify(reading)}]${frame.suffix}`;
    expect(TelemetryPayload.parse(JSON.parse(json))).toEqual({
      v: 1,
      gatewayId: "gw-1",
      batchId: "s7-7",
      sentAt: "2026-01-01T00:00:00.000Z",
      readings: [reading],
    });
  });
});
