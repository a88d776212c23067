/**
 * Test-only: the contract every Store adapter must keep (CONVENTIONS §9), run against each
 * SqlClient underneath (PGlite in a temp dir, a PostgreSQL server). Nothing in a product path
 * imports this.
 */
import { EdgemeterError, type EventsPayload, type TelemetryPayload } from "@edgemeter/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations } from "./migrations.js";
import type { PostgresStore } from "./postgresStore.js";

export interface StoreUnderTest {
  store: PostgresStore;
  /** Closes the store and removes its database. */
  dispose(): Promise<void>;
}

const PAGE = { limit: 1000, offset: 0 };

function telemetry(gatewayId: string, readings: TelemetryPayload["readings"]): TelemetryPayload {
  return { v: 1, gatewayId, batchId: `b-${readings[0]?.seq ?? 0}`, sentAt: "2026-11-22T10:00:05.000Z", readings };
}

export function runStoreContract(name: string, makeStore: () => Promise<StoreUnderTest | null>): void {
  describe(`Store contract: ${name}`, () => {
    let subject: StoreUnderTest | null = null;
    let store: PostgresStore;

    beforeAll(async () => {
      subject = await makeStore();
      if (subject !== null) {
        store = subject.store;
        await store.migrate();
      }
    });
    afterAll(async () => {
      await subject?.dispose();
    });

    const test = (title: string, body: () => Promise<void>) =>
      it(title, async (context) => {
        if (subject === null) context.skip();
        await body();
      });

    test("migrate is idempotent, also when called concurrently", async () => {
      await store.migrate();
      await Promise.all([store.migrate(), store.migrate()]);
      const { rows } = await store.sql.query<{ name: string }>("SELECT name FROM schema_migrations ORDER BY name");
      expect(rows.map((row) => row.name)).toEqual(loadMigrations().map((migration) => migration.name));
    });

    test("lands a batch and reads back the same values, registering gateway and meters", async () => {
      const receivedAt = new Date("2026-11-22T10:00:06.123Z");
      const batch = telemetry("gw-land", [
        {
          meterId: "land-m1",
          seq: 10,
          ts: "2026-11-22T10:00:00.000Z",
          clock: "synced",
          values: { voltageL1V: 230.1, importEnergyKwh: 1234.567, powerFactor: 0.98 },
        },
        {
          meterId: "land-m1",
          seq: 11,
          ts: "2026-11-22T10:00:01.500Z",
          clock: "unsynced",
          values: { voltageL1V: 229.9, importEnergyKwh: 1234.568 },
          errors: [{ code: "modbus.timeout", message: "no answer" }],
        },
        {
          meterId: "land-m2",
          seq: 12,
          ts: "2026-11-22T10:00:00.000Z",
          clock: "synced",
          values: { frequencyHz: 50.01 },
        },
      ]);
      expect(await store.landTelemetry(batch, receivedAt)).toEqual({ inserted: 3, duplicates: 0 });

      const rows = await store.readings(
        "land-m1",
        new Date("2026-11-22T00:00:00Z"),
        new Date("2026-11-23T00:00:00Z"),
        PAGE,
      );
      expect(rows).toEqual([
        {
          meterId: "land-m1",
          gatewayId: "gw-land",
          seq: 10,
          ts: "2026-11-22T10:00:00.000Z",
          clock: "synced",
          values: { voltageL1V: 230.1, importEnergyKwh: 1234.567, powerFactor: 0.98 },
          receivedAt: "2026-11-22T10:00:06.123Z",
        },
        {
          meterId: "land-m1",
          gatewayId: "gw-land",
          seq: 11,
          ts: "2026-11-22T10:00:01.500Z",
          clock: "unsynced",
          values: { voltageL1V: 229.9, importEnergyKwh: 1234.568 },
          receivedAt: "2026-11-22T10:00:06.123Z",
        },
      ]);
      // The half-open range excludes its end.
      expect(
        await store.readings("land-m1", new Date("2026-11-22T10:00:00Z"), new Date("2026-11-22T10:00:01.500Z"), PAGE),
      ).toHaveLength(1);

      const { rows: energy } = await store.sql.query<{ import_energy_kwh: number; export_energy_kwh: number | null }>(
        "SELECT import_energy_kwh, export_energy_kwh FROM readings WHERE meter_id = 'land-m1' ORDER BY ts",
      );
      expect(energy).toEqual([
        { import_energy_kwh: 1234.567, export_energy_kwh: null },
        { import_energy_kwh: 1234.568, export_energy_kwh: null },
      ]);

      expect(await store.getMeter("land-m1")).toEqual({
        meterId: "land-m1",
        gatewayId: "gw-land",
        customerId: null,
        tariffId: null,
        latitude: null,
        longitude: null,
        timeZone: null,
        firstSeenAt: "2026-11-22T10:00:06.123Z",
        lastReadingAt: "2026-11-22T10:00:01.500Z",
      });
      expect(await store.getMeter("no-such-meter")).toBeNull();
      const gateway = (await store.listGateways(PAGE)).find((g) => g.gatewayId === "gw-land");
      expect(gateway).toEqual({
        gatewayId: "gw-land",
        online: true,
        firstSeenAt: "2026-11-22T10:00:06.123Z",
        lastSeenAt: "2026-11-22T10:00:06.123Z",
        status: null,
      });
    });

    test("a replayed batch changes nothing", async () => {
      const batch = telemetry("gw-replay", [
        { meterId: "replay-m1", seq: 1, ts: "2026-11-22T11:00:00.000Z", clock: "synced", values: { voltageL1V: 231 } },
        { meterId: "replay-m1", seq: 2, ts: "2026-11-22T11:00:01.000Z", clock: "synced", values: { voltageL1V: 232 } },
      ]);
      expect(await store.landTelemetry(batch, new Date("2026-11-22T11:00:02.000Z"))).toEqual({
        inserted: 2,
        duplicates: 0,
      });
      const before = await store.readings("replay-m1", new Date(0), new Date("2100-01-01Z"), PAGE);

      // The same readings again, even with different values (a gateway bug): the first landing wins.
      const replay = structuredClone(batch);
      for (const reading of replay.readings) reading.values = { voltageL1V: 1 };
      expect(await store.landTelemetry(replay, new Date("2026-11-22T12:00:00.000Z"))).toEqual({
        inserted: 0,
        duplicates: 2,
      });
      expect(await store.readings("replay-m1", new Date(0), new Date("2100-01-01Z"), PAGE)).toEqual(before);
      // Duplicates inside one batch count as duplicates too.
      const doubled = telemetry("gw-replay", [
        { meterId: "replay-m2", seq: 3, ts: "2026-11-22T11:00:00.000Z", clock: "synced", values: { voltageL1V: 1 } },
        { meterId: "replay-m2", seq: 3, ts: "2026-11-22T11:00:00.000Z", clock: "synced", values: { voltageL1V: 1 } },
      ]);
      expect(await store.landTelemetry(doubled, new Date())).toEqual({ inserted: 1, duplicates: 1 });
    });

    test("creates month partitions across a month (and year) boundary; nothing lands in DEFAULT", async () => {
      const batch = telemetry("gw-months", [
        {
          meterId: "months-m1",
          seq: 1,
          ts: "2025-12-31T23:59:59.999Z",
          clock: "synced",
          values: { importEnergyKwh: 1 },
        },
        {
          meterId: "months-m1",
          seq: 2,
          ts: "2026-01-01T00:00:00.000Z",
          clock: "synced",
          values: { importEnergyKwh: 2 },
        },
        {
          meterId: "months-m1",
          seq: 3,
          ts: "2026-02-01T00:00:00.000Z",
          clock: "synced",
          values: { importEnergyKwh: 3 },
        },
      ]);
      expect(await store.landTelemetry(batch, new Date())).toEqual({ inserted: 3, duplicates: 0 });
      const { rows } = await store.sql.query<{ partition: string; n: unknown }>(
        `SELECT tableoid::regclass::text AS partition, count(*) AS n FROM readings
         WHERE meter_id = 'months-m1' GROUP BY 1 ORDER BY 1`,
      );
      expect(rows.map((row) => [row.partition, Number(row.n)])).toEqual([
        ["readings_y2025m12", 1],
        ["readings_y2026m01", 1],
        ["readings_y2026m02", 1],
      ]);
      const { rows: inDefault } = await store.sql.query<{ n: unknown }>("SELECT count(*) AS n FROM readings_default");
      expect(Number(inDefault[0]?.n)).toBe(0);
      const all = await store.readings("months-m1", new Date("2025-12-31T00:00:00Z"), new Date("2026-03-01Z"), PAGE);
      expect(all.map((r) => r.ts)).toEqual([
        "2025-12-31T23:59:59.999Z",
        "2026-01-01T00:00:00.000Z",
        "2026-02-01T00:00:00.000Z",
      ]);
    });

    test("lands a maximum-size batch in several statements (65535-parameter limit)", async () => {
      const start = Date.parse("2026-10-01T00:00:00.000Z");
      const readings = Array.from({ length: 10_000 }, (_, i) => ({
        meterId: `big-m${i % 4}`,
        seq: i,
        ts: new Date(start + i * 1000).toISOString(),
        clock: "synced" as const,
        values: { voltageL1V: 230 + (i % 10) / 10, importEnergyKwh: i / 100 },
      }));
      const batch = telemetry("gw-big", readings);
      expect(await store.landTelemetry(batch, new Date())).toEqual({ inserted: 10_000, duplicates: 0 });
      expect(await store.landTelemetry(batch, new Date())).toEqual({ inserted: 0, duplicates: 10_000 });
      const m3 = await store.readings("big-m3", new Date(start), new Date(start + 10_000_000), { limit: 5, offset: 2 });
      expect(m3.map((r) => r.seq)).toEqual([11, 15, 19, 23, 27]);
    });

    test("lands events once and keeps gateway status, newest first", async () => {
      const events: EventsPayload = {
        v: 1,
        gatewayId: "gw-events",
        batchId: "e1",
        sentAt: "2026-11-22T10:00:00.000Z",
        events: [
          {
            eventId: "ev1",
            meterId: "events-m1",
            kind: "voltageSag",
            state: "start",
            phase: "L1",
            value: 180.5,
            threshold: 207,
            ts: "2026-11-22T09:59:00.000Z",
            durationMs: null,
            clock: "synced",
          },
          {
            eventId: "ev1",
            meterId: "events-m1",
            kind: "voltageSag",
            state: "end",
            phase: "L1",
            value: 175,
            threshold: 207,
            ts: "2026-11-22T09:59:02.000Z",
            durationMs: 2000,
            clock: "synced",
          },
        ],
      };
      // Received before the statuses below (a fixed time: landing moves last_seen_at).
      const receivedAt = new Date("2026-11-22T10:00:30.000Z");
      expect(await store.landEvents(events, receivedAt)).toEqual({ inserted: 2, duplicates: 0 });
      expect(await store.landEvents(events, receivedAt)).toEqual({ inserted: 0, duplicates: 2 });
      const { rows } = await store.sql.query<{ state: string; value: number; duration_ms: unknown }>(
        "SELECT state, value, duration_ms FROM events WHERE gateway_id = 'gw-events' ORDER BY ts",
      );
      expect(rows.map((r) => [r.state, r.value, r.duration_ms === null ? null : Number(r.duration_ms)])).toEqual([
        ["start", 180.5, null],
        ["end", 175, 2000],
      ]);
      expect((await store.getMeter("events-m1"))?.gatewayId).toBe("gw-events");

      const gatewayOf = async () => (await store.listGateways(PAGE)).find((g) => g.gatewayId === "gw-events");
      await store.recordStatus(
        { v: 1, gatewayId: "gw-events", state: "online", ts: "2026-11-22T10:05:00.000Z", version: "1.2.0" },
        new Date("2026-11-22T10:05:01.000Z"),
      );
      expect((await gatewayOf())?.status?.version).toBe("1.2.0");
      // A late, older status (redelivered) does not overwrite the newer one.
      await store.recordStatus(
        { v: 1, gatewayId: "gw-events", state: "offline", ts: "2026-11-22T10:00:00.000Z" },
        new Date("2026-11-22T10:06:00.000Z"),
      );
      expect(await gatewayOf()).toMatchObject({ online: true, lastSeenAt: "2026-11-22T10:05:00.000Z" });
      // The last will carries no ts and always applies.
      await store.recordStatus({ v: 1, gatewayId: "gw-events", state: "offline" }, new Date("2026-11-22T10:07:00Z"));
      expect(await gatewayOf()).toMatchObject({
        online: false,
        lastSeenAt: "2026-11-22T10:05:00.000Z",
        status: { v: 1, gatewayId: "gw-events", state: "offline" },
      });
    });

    test("stores rejected messages with reason and raw payload, newest first, truncated", async () => {
      const before = await store.countRejected();
      const binary = Buffer.from([0xff, 0x00, 0x7b]);
      await store.recordRejected(
        { topic: "edgemeter/v1/gw/x/telemetry", reason: "invalid JSON: x", payload: binary },
        new Date(),
      );
      const huge = Buffer.alloc(300 * 1024, "a");
      await store.recordRejected({ topic: "t/huge", reason: "r".repeat(20_000), payload: huge }, new Date());
      expect(await store.countRejected()).toBe(before + 2);
      const [newest, older] = await store.listRejected({ limit: 2, offset: 0 });
      expect(newest?.topic).toBe("t/huge");
      expect(newest?.payloadText.length).toBe(256 * 1024);
      expect(newest?.reason.length).toBeLessThan(8_100);
      expect(older).toMatchObject({ topic: "edgemeter/v1/gw/x/telemetry", reason: "invalid JSON: x" });
      expect(Buffer.from(older?.payloadText ?? "", "utf8").includes(0x7b)).toBe(true);
      const { rows } = await store.sql.query<{ payload: Uint8Array }>(
        "SELECT payload FROM rejected_messages WHERE topic = 'edgemeter/v1/gw/x/telemetry'",
      );
      expect(Buffer.from(rows[0]?.payload ?? new Uint8Array()).equals(binary)).toBe(true);
    });

    test("lists meters in pages", async () => {
      const batch = telemetry(
        "gw-pages",
        ["pages-c", "pages-a", "pages-b"].map((meterId, i) => ({
          meterId,
          seq: i,
          ts: "2026-11-22T10:00:00.000Z",
          clock: "synced" as const,
          values: {},
        })),
      );
      await store.landTelemetry(batch, new Date());
      const ids = (await store.listMeters({ limit: 10_000, offset: 0 }))
        .map((m) => m.meterId)
        .filter((id) => id.startsWith("pages-"));
      expect(ids).toEqual(["pages-a", "pages-b", "pages-c"]);
      const all = await store.listMeters({ limit: 10_000, offset: 0 });
      const second = await store.listMeters({ limit: 1, offset: 1 });
      expect(second).toEqual([all[1]]);
    });

    test("creates, finds and revokes API keys by hash", async () => {
      const hash = "a".repeat(64);
      const created = await store.createApiKey("ops", hash, ["read", "admin"]);
      expect(created).toMatchObject({ name: "ops", scopes: ["read", "admin"], revokedAt: null });
      expect(created.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(await store.findApiKeyByHash(hash)).toEqual(created);
      expect(await store.findApiKeyByHash("b".repeat(64))).toBeNull();
      await store.revokeApiKey(created.id);
      const revoked = await store.findApiKeyByHash(hash);
      expect(revoked?.revokedAt).not.toBeNull();
      await store.revokeApiKey(created.id);
      expect((await store.findApiKeyByHash(hash))?.revokedAt).toBe(revoked?.revokedAt);
      await expect(store.revokeApiKey(999_999)).rejects.toSatisfy(
        (error) => error instanceof EdgemeterError && error.code === "storage.notFound",
      );
      await expect(store.createApiKey("dup", hash, ["read"])).rejects.toBeInstanceOf(EdgemeterError);
    });
  });
}
