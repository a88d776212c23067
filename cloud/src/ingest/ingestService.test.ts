import { isRetryable, topicFor } from "@edgemeter/shared";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import { flakyStore } from "./flakyStore.js";
import { IngestService } from "./ingestService.js";

const logger = pino({ level: "silent" });
const PAGE = { limit: 100, offset: 0 };

function telemetryJson(gatewayId: string, seq: number, ts = "2026-11-22T10:00:00.000Z", meterId = "m1"): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      gatewayId,
      batchId: `b${seq}`,
      sentAt: "2026-11-22T10:00:01.000Z",
      readings: [{ meterId, seq, ts, clock: "synced", values: { voltageL1V: 230.5, importEnergyKwh: 10 } }],
    }),
  );
}

describe("IngestService", () => {
  let store: PostgresStore;
  beforeAll(async () => {
    store = new PostgresStore({ sql: await PgliteSqlClient.open(), logger });
    await store.migrate();
  });
  afterAll(async () => {
    await store.close();
  });

  it("rejects bad input with a reason, counts and stores it, and keeps landing good messages", async () => {
    const ingest = new IngestService({ store, logger });
    const topic = topicFor("telemetry", "gw-a");

    const badJson = await ingest.handle(topic, Buffer.from("{not json"));
    expect(badJson).toMatchObject({ kind: "rejected", reason: expect.stringMatching(/^invalid JSON: /) });

    const wrongSchema = JSON.parse(telemetryJson("gw-a", 1).toString()) as { readings: { ts: string }[] };
    (wrongSchema.readings[0] as { ts: string }).ts = "yesterday";
    const schema = await ingest.handle(topic, Buffer.from(JSON.stringify(wrongSchema)));
    expect(schema).toMatchObject({ kind: "rejected" });
    expect(schema.kind === "rejected" && schema.reason).toContain(
      `${topic}: readings.0.ts: must be an ISO 8601 UTC time`,
    );

    const mismatch = await ingest.handle(topic, telemetryJson("gw-b", 2));
    expect(mismatch).toEqual({ kind: "rejected", reason: 'gatewayId "gw-b" differs from topic gateway "gw-a"' });

    const strayTopic = await ingest.handle("edgemeter/v1/gw/gw-a/other", telemetryJson("gw-a", 3));
    expect(strayTopic.kind === "rejected" && strayTopic.reason).toMatch(/^not an edgemeter topic/);

    const tooBig = await ingest.handle(topic, Buffer.alloc(200 * 1024, " "));
    expect(tooBig.kind === "rejected" && tooBig.reason).toMatch(/exceeds the 131072-byte limit/);

    expect(await ingest.handle(topic, telemetryJson("gw-a", 4))).toEqual({
      kind: "landed",
      topicKind: "telemetry",
      gatewayId: "gw-a",
      inserted: 1,
      duplicates: 0,
    });
    expect(await ingest.handle(topic, telemetryJson("gw-a", 4))).toMatchObject({ inserted: 0, duplicates: 1 });

    expect(ingest.stats()).toEqual({ landed: 2, duplicates: 1, rejected: 5, inserted: 1, retryableFailures: 0 });
    const rejected = await store.listRejected(PAGE);
    expect(rejected.map((r) => r.reason)).toContain('gatewayId "gw-b" differs from topic gateway "gw-a"');
    expect(rejected.find((r) => r.reason.startsWith("invalid JSON"))).toMatchObject({
      topic,
      payloadText: "{not json",
    });
    expect(await store.readings("m1", new Date(0), new Date("2100-01-01Z"), PAGE)).toHaveLength(1);
  });

  it("lands events and status through their topics", async () => {
    const ingest = new IngestService({ store, logger });
    const events = {
      v: 1,
      gatewayId: "gw-e",
      batchId: "e1",
      sentAt: "2026-11-22T10:00:00.000Z",
      events: [
        {
          eventId: "x1",
          meterId: "me1",
          kind: "meterOffline",
          state: "instant",
          phase: null,
          value: null,
          threshold: null,
          ts: "2026-11-22T09:00:00.000Z",
          durationMs: null,
          clock: "synced",
        },
      ],
    };
    expect(await ingest.handle(topicFor("events", "gw-e"), Buffer.from(JSON.stringify(events)))).toMatchObject({
      kind: "landed",
      topicKind: "events",
      inserted: 1,
    });
    const status = { v: 1, gatewayId: "gw-e", state: "offline" };
    expect(await ingest.handle(topicFor("status", "gw-e"), Buffer.from(JSON.stringify(status)))).toMatchObject({
      kind: "landed",
      topicKind: "status",
    });
    const gateway = (await store.listGateways(PAGE)).find((g) => g.gatewayId === "gw-e");
    expect(gateway).toMatchObject({ online: false, status });
  });

  it("throws a retryable storage failure (so the message is not acknowledged) and lands it on redelivery", async () => {
    const failures = { remaining: 1 };
    const ingest = new IngestService({ store: flakyStore(store, failures, "gw-flaky"), logger });
    const topic = topicFor("telemetry", "gw-flaky");
    const rejectedBefore = await store.countRejected();
    const error = await ingest
      .handle(topic, telemetryJson("gw-flaky", 1, undefined, "flaky-m1"))
      .catch((e: unknown) => e);
    expect(isRetryable(error)).toBe(true);
    expect(await ingest.handle(topic, telemetryJson("gw-flaky", 1, undefined, "flaky-m1"))).toMatchObject({
      kind: "landed",
      inserted: 1,
    });
    expect(ingest.stats()).toMatchObject({ landed: 1, rejected: 0, retryableFailures: 1 });
    expect(await store.countRejected()).toBe(rejectedBefore);
  });

  it("records a batch the database refuses for good as rejected instead of retrying it forever", async () => {
    const ingest = new IngestService({ store, logger });
    const topic = topicFor("telemetry", "gw-year0");
    // Valid ISO 8601, but PostgreSQL has no year 0.
    const outcome = await ingest.handle(topic, telemetryJson("gw-year0", 1, "0000-01-01T00:00:00.000Z"));
    expect(outcome.kind === "rejected" && outcome.reason).toMatch(/^storage: /);
    expect(ingest.stats()).toMatchObject({ rejected: 1, retryableFailures: 0 });
    expect(await ingest.handle(topic, telemetryJson("gw-year0", 2, "2026-11-22T10:00:00.000Z", "y-m1"))).toMatchObject({
      kind: "landed",
      inserted: 1,
    });
  });

  it("landTogether: a gateway's messages in one transaction, bad and repeated ones handled as alone", async () => {
    const calls = { landTelemetry: 0 };
    const counting = new Proxy(store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property === "landTelemetry") calls.landTelemetry += 1;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const ingest = new IngestService({ store: counting, logger });
    const topicA = topicFor("telemetry", "gw-ga");
    const topicB = topicFor("telemetry", "gw-gb");
    const outcomes = await Promise.all(
      ingest.landTogether([
        { topic: topicA, payload: telemetryJson("gw-ga", 1, "2026-11-22T10:00:00.000Z", "ga-m1") },
        { topic: topicA, payload: Buffer.from("{oops") },
        { topic: topicA, payload: telemetryJson("gw-ga", 2, "2026-11-22T10:01:00.000Z", "ga-m1") },
        // The same reading again (a redelivered batch): stored once.
        { topic: topicA, payload: telemetryJson("gw-ga", 2, "2026-11-22T10:01:00.000Z", "ga-m1") },
        { topic: topicB, payload: telemetryJson("gw-gb", 1, "2026-11-22T10:00:00.000Z", "gb-m1") },
      ]),
    );
    expect(outcomes.map((o) => o.kind)).toEqual(["landed", "rejected", "landed", "landed", "landed"]);
    expect(outcomes[0]).toMatchObject({ gatewayId: "gw-ga", inserted: 2, duplicates: 1 });
    expect(outcomes[4]).toMatchObject({ gatewayId: "gw-gb", inserted: 1, duplicates: 0 });
    // gw-ga's three messages in one call, gw-gb's one in another.
    expect(calls.landTelemetry).toBe(2);
    expect(ingest.stats()).toEqual({ landed: 4, duplicates: 1, rejected: 1, inserted: 3, retryableFailures: 0 });
    expect((await store.readings("ga-m1", new Date(0), new Date("2100-01-01Z"), PAGE)).map((r) => r.seq)).toEqual([
      1, 2,
    ]);
  });

  it("precheck (on arrival) does the checks landTogether would do: the same outcomes, the same reasons", async () => {
    const ingest = new IngestService({ store, logger });
    const topic = topicFor("telemetry", "gw-pc");
    const wrongTs = JSON.parse(telemetryJson("gw-pc", 9).toString()) as { readings: { ts: string }[] };
    (wrongTs.readings[0] as { ts: string }).ts = "2026-02-30T00:00:00.000Z";
    const messages = [
      { topic, payload: telemetryJson("gw-pc", 1, "2026-11-22T10:00:00.000Z", "pc-m1") },
      { topic, payload: Buffer.from(JSON.stringify(wrongTs)) },
      { topic, payload: telemetryJson("gw-other", 2) },
    ];
    const prechecked = messages.map((message) => ingest.precheck(message));
    expect(prechecked.map((message) => message.checked !== undefined)).toEqual([true, true, true]);
    const outcomes = await Promise.all(ingest.landTogether(prechecked));
    expect(outcomes[0]).toMatchObject({ kind: "landed", inserted: 1 });
    expect(outcomes[1]).toEqual({
      kind: "rejected",
      reason: `${topic}: readings.0.ts: must be an ISO 8601 UTC time like 2026-01-31T12:00:00.000Z`,
    });
    expect(outcomes[2]).toEqual({
      kind: "rejected",
      reason: 'gatewayId "gw-other" differs from topic gateway "gw-pc"',
    });
    expect(ingest.stats()).toMatchObject({ landed: 1, rejected: 2, inserted: 1 });
  });

  it("landTogether: a retryable failure fails every message of the group; a permanent one isolates the culprit", async () => {
    const failures = { remaining: 1 };
    const ingest = new IngestService({ store: flakyStore(store, failures, "gw-gf"), logger });
    const topic = topicFor("telemetry", "gw-gf");
    const group = [
      { topic, payload: telemetryJson("gw-gf", 1, "2026-11-22T10:00:00.000Z", "gf-m1") },
      { topic, payload: telemetryJson("gw-gf", 2, "2026-11-22T10:01:00.000Z", "gf-m1") },
    ];
    const failed = await Promise.allSettled(ingest.landTogether(group));
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(ingest.stats()).toMatchObject({ landed: 0, retryableFailures: 2 });
    expect((await Promise.all(ingest.landTogether(group))).map((o) => o.kind)).toEqual(["landed", "landed"]);

    const year0 = topicFor("telemetry", "gw-gy");
    const mixed = await Promise.all(
      ingest.landTogether([
        { topic: year0, payload: telemetryJson("gw-gy", 1, "2026-11-22T10:00:00.000Z", "gy-m1") },
        // Valid ISO 8601, but PostgreSQL has no year 0: the group fails for good, then lands one by one.
        { topic: year0, payload: telemetryJson("gw-gy", 2, "0000-01-01T00:00:00.000Z", "gy-m1") },
      ]),
    );
    expect(mixed[0]).toMatchObject({ kind: "landed", inserted: 1 });
    const culprit = mixed[1];
    expect(culprit?.kind === "rejected" && culprit.reason).toMatch(/^storage: /);
  });
});
