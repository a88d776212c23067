import type { TelemetryPayload } from "@edgemeter/shared";
import { tempDir } from "@edgemeter/shared/testing";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PgSqlClient } from "../store/pgSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import { createThrowawayDatabase, postgresAvailable } from "../store/throwawayDatabase.js";
import type { ApiErrorBody } from "./apiErrors.js";
import { hashApiKey } from "./auth.js";
import { buildApi } from "./buildApi.js";

/**
 * The seed-compatible and /v1 platform routes over a real PGlite store and a fixture: meter
 * fx-1 (UTC) with hourly readings from 2026-01-01 to 2026-03-01 whose daily consumption is
 * 10 kWh + the weekday number (Sunday 0 … Saturday 6), except 2026-02-18 (a Wednesday), 50 kWh.
 * A voltage interruption at 2026-02-10T05:30Z is the one outage; readings resume at 06:00.
 */
const READ_KEY = "read-key-platform-0123";
const ADMIN_KEY = "admin-key-platform-0123";
const silent = pino({ level: "silent" });
const HOUR_MS = 60 * 60 * 1000;
const START_MS = Date.UTC(2026, 0, 1);
const END_MS = Date.UTC(2026, 2, 1);
const ANOMALY_DAY = "2026-02-18";
const OUTAGE_AT = "2026-02-10T05:30:00.000Z";

function dailyKwh(dayStartMs: number): number {
  const day = new Date(dayStartMs).toISOString().slice(0, 10);
  return day === ANOMALY_DAY ? 50 : 10 + new Date(dayStartMs).getUTCDay();
}

function fixtureReadings(): { ts: string; kwh: number }[] {
  const readings: { ts: string; kwh: number }[] = [];
  let register = 500;
  for (let t = START_MS; t <= END_MS; t += HOUR_MS) {
    readings.push({ ts: new Date(t).toISOString(), kwh: register });
    register += dailyKwh(Math.floor(t / (24 * HOUR_MS)) * 24 * HOUR_MS) / 24;
  }
  return readings;
}

function batch(readings: { ts: string; kwh: number }[], seq0: number): TelemetryPayload {
  return {
    v: 1,
    gatewayId: "gw-fx",
    batchId: `fx-${seq0}`,
    sentAt: "2026-03-01T00:00:00.000Z",
    readings: readings.map((r, i) => ({
      meterId: "fx-1",
      seq: seq0 + i,
      ts: r.ts,
      clock: "synced" as const,
      values: { importEnergyKwh: r.kwh },
    })),
  };
}

interface Opened {
  store: PostgresStore;
  dispose(): Promise<void>;
}

function platformSuite(name: string, open: () => Promise<Opened>, skip = false): void {
  describe.skipIf(skip)(`platform API over ${name}`, () => {
    let store: PostgresStore;
    let app: FastifyInstance;
    let dispose: () => Promise<void> = async () => {};

    beforeAll(async () => {
      const opened = await open();
      store = opened.store;
      dispose = opened.dispose;
      await store.migrate();
      await store.createApiKey("reader", hashApiKey(READ_KEY), ["read"]);
      await store.createApiKey("admin", hashApiKey(ADMIN_KEY), ["admin"]);
      app = await buildApi({ store, meterData: store, logger: silent });

      const readings = fixtureReadings();
      const before = readings.filter((r) => r.ts < OUTAGE_AT);
      const after = readings.filter((r) => r.ts >= OUTAGE_AT);
      for (let i = 0; i < before.length; i += 500)
        await store.landTelemetry(batch(before.slice(i, i + 500), i), new Date());
      await store.landEvents(
        {
          v: 1,
          gatewayId: "gw-fx",
          batchId: "ev-1",
          sentAt: OUTAGE_AT,
          events: [
            {
              eventId: "int-1",
              meterId: "fx-1",
              kind: "voltageInterruption",
              state: "start",
              phase: null,
              value: 3.1,
              threshold: 11.5,
              ts: OUTAGE_AT,
              durationMs: null,
              clock: "synced",
            },
          ],
        },
        new Date(),
      );
      const put = await app.inject({
        method: "PUT",
        url: "/v1/meters/fx-1",
        headers: { "x-api-key": ADMIN_KEY },
        payload: {
          gatewayId: "gw-fx",
          customerId: "c-9",
          tariffId: "t-flat",
          latitude: 52.52,
          longitude: 13.405,
          timeZone: "UTC",
        },
      });
      expect(put.statusCode).toBe(200);
      for (let i = 0; i < after.length; i += 500) {
        await store.landTelemetry(batch(after.slice(i, i + 500), 10_000 + i), new Date());
      }
    }, 120_000);

    afterAll(async () => {
      await app?.close();
      await dispose();
    });

    const get = (url: string, headers: Record<string, string> = { "x-api-key": READ_KEY }) =>
      app.inject({ method: "GET", url, headers });

    const expectBadRequest = async (url: string, path: string) => {
      const response = await get(url);
      expect(response.statusCode, url).toBe(400);
      const error = (response.json() as ApiErrorBody).error;
      expect(error.code).toBe("api.badRequest");
      expect(error.details.map((d) => d.path)).toContain(path);
    };

    describe("seed-compatible routes", () => {
      it("GET /consumption/daily gives [meter_id, YYYYMMDD, kWh] per day", async () => {
        const response = await get("/consumption/daily/2026/fx-1");
        expect(response.statusCode).toBe(200);
        const body = response.json() as [string, string, number][];
        expect(body).toHaveLength(59);
        expect(body[0]).toEqual(["fx-1", "20260101", 14]); // Thursday
        expect(body[3]).toEqual(["fx-1", "20260104", 10]); // Sunday
        expect(body.find((row) => row[1] === "20260218")).toEqual(["fx-1", "20260218", 50]);
        expect(body[58]).toEqual(["fx-1", "20260228", 16]); // Saturday
        expect(await get("/consumption/daily/2025/fx-1").then((r) => r.json())).toEqual([]);
      });

      it("GET /consumption/weekly sums ISO weeks keyed by their Monday (the first by 1 January)", async () => {
        const body = (await get("/consumption/weekly/2026/fx-1")).json() as [string, string, number][];
        expect(body.slice(0, 3)).toEqual([
          ["fx-1", "20260101", 14 + 15 + 16 + 10],
          ["fx-1", "20260105", 91],
          ["fx-1", "20260112", 91],
        ]);
        // The week of 2026-02-16 holds the 50 kWh Wednesday instead of 13.
        expect(body.find((row) => row[1] === "20260216")).toEqual(["fx-1", "20260216", 91 - 13 + 50]);
      });

      it("GET /consumption/monthly gives one row per month keyed by its first day", async () => {
        let january = 0;
        for (let d = 1; d <= 31; d++) january += 10 + new Date(Date.UTC(2026, 0, d)).getUTCDay();
        expect((await get("/consumption/monthly/2026/fx-1")).json()).toEqual([
          ["fx-1", "20260101", january],
          ["fx-1", "20260201", 4 * 91 - 13 + 50],
        ]);
      });

      it("GET /anomaly flags the 50 kWh Wednesday against its weekday band", async () => {
        const response = await get("/anomaly/fx-1?data_start=2026-02-16&data_end=2026-02-23&outlier_only=0");
        expect(response.statusCode).toBe(200);
        const body = response.json() as Record<string, Record<string, unknown>>;
        expect(Object.keys(body)).toEqual([
          "meter_id",
          "ds",
          "consumption",
          "yhat_lower",
          "yhat_upper",
          "anomaly",
          "importance",
        ]);
        expect(body.ds).toEqual({
          "0": "2026-02-16",
          "1": "2026-02-17",
          "2": "2026-02-18",
          "3": "2026-02-19",
          "4": "2026-02-20",
          "5": "2026-02-21",
          "6": "2026-02-22",
        });
        expect(body.anomaly).toEqual({ "0": 0, "1": 0, "2": 1, "3": 0, "4": 0, "5": 0, "6": 0 });
        // Wednesdays: six of 13 kWh and one of 50: median 13, MAD 0, so the 5 % floor: 13 ± 0.65.
        expect(body.yhat_lower?.["2"]).toBe(12.35);
        expect(body.yhat_upper?.["2"]).toBe(13.65);
        expect(body.consumption?.["2"]).toBe(50);
        expect(body.importance?.["2"]).toBe(0.727);
        expect(body.importance?.["0"]).toBe(0);

        const outliers = (await get("/anomaly/fx-1?data_start=2026-02-16&data_end=2026-02-23&outlier_only=1")).json();
        expect(outliers).toEqual({
          meter_id: { "0": "fx-1" },
          ds: { "0": "2026-02-18" },
          consumption: { "0": 50 },
          yhat_lower: { "0": 12.35 },
          yhat_upper: { "0": 13.65 },
          anomaly: { "0": 1 },
          importance: { "0": 0.727 },
        });
      });

      it("GET /forecast repeats the latest week before data_start (seasonal naive)", async () => {
        const response = await get("/forecast/fx-1?data_start=2026-02-23&data_end=2026-03-02");
        expect(response.statusCode).toBe(200);
        const day = (d: string) => String(Date.parse(`${d}T00:00:00Z`));
        expect(response.json()).toEqual({
          consumption: {
            [day("2026-02-23")]: 11,
            [day("2026-02-24")]: 12,
            [day("2026-02-25")]: 50,
            [day("2026-02-26")]: 14,
            [day("2026-02-27")]: 15,
            [day("2026-02-28")]: 16,
            [day("2026-03-01")]: 10,
          },
        });
      });

      it("GET /outage lists outages started in the range with the meter's position", async () => {
        const response = await get("/outage?start_date_time=2026-02-10%2000:00:00&end_date_time=2026-02-10%2023:59:59");
        expect(response.statusCode).toBe(200);
        expect(response.json()).toEqual({
          Items: [
            {
              meter_id: "fx-1",
              reading_date_time: "2026-02-10 05:30:00.000",
              date_str: "20260210",
              lat: 52.52,
              long: 13.405,
            },
          ],
        });
        expect(
          (await get("/outage?start_date_time=2026-02-11%2000:00:00&end_date_time=2026-02-12%2000:00:00")).json(),
        ).toEqual({
          Items: [],
        });
      });

      it("answers 400 naming each missing or malformed parameter, never 500", async () => {
        await expectBadRequest("/consumption/hourly/2026/fx-1", "params.aggregation");
        await expectBadRequest("/consumption/daily/20x6/fx-1", "params.year");
        // The seed platform pasted this into SQL; here it is a bound parameter naming no meter.
        const injection = await get("/consumption/daily/2026/'%20OR%201=1--");
        expect(injection.statusCode).toBe(200);
        expect(injection.json()).toEqual([]);
        await expectBadRequest("/anomaly/fx-1?data_end=2026-02-23", "querystring.data_start");
        await expectBadRequest("/anomaly/fx-1?data_start=2026-02-30&data_end=2026-03-02", "querystring.data_start");
        await expectBadRequest(
          "/anomaly/fx-1?data_start=2026-02-16&data_end=2026-02-23&outlier_only=yes",
          "querystring.outlier_only",
        );
        await expectBadRequest("/forecast/fx-1?data_start=2026-02-23", "querystring.data_end");
        await expectBadRequest("/forecast/fx-1?data_start=2026-02-23&data_end=2026-02-01", "querystring.data_start");
        await expectBadRequest(
          "/outage?start_date_time=yesterday&end_date_time=2026-02-12%2000:00:00",
          "querystring.start_date_time",
        );
        await expectBadRequest("/outage?start_date_time=2026-02-11%2000:00:00", "querystring.end_date_time");
        await expectBadRequest(
          "/forecast/fx-1?data_start=2026-02-23&data_start=2026-02-24&data_end=2026-03-01",
          "querystring.data_start",
        );
      });

      it("needs an API key", async () => {
        expect((await get("/consumption/daily/2026/fx-1", {})).statusCode).toBe(401);
      });
    });

    describe("/v1 platform routes", () => {
      it("PUT /v1/meters/:id needs admin and validates the registry fields", async () => {
        const asReader = await app.inject({
          method: "PUT",
          url: "/v1/meters/fx-2",
          headers: { "x-api-key": READ_KEY },
          payload: {},
        });
        expect(asReader.statusCode).toBe(403);
        const bad = await app.inject({
          method: "PUT",
          url: "/v1/meters/fx-2",
          headers: { "x-api-key": ADMIN_KEY },
          payload: { timeZone: "Mars/Olympus", latitude: 91, gatewayId: "gw-none" },
        });
        expect(bad.statusCode).toBe(400);
        expect((bad.json() as ApiErrorBody).error.details.map((d) => d.path).sort()).toEqual([
          "body.latitude",
          "body.timeZone",
        ]);
        const unknownGateway = await app.inject({
          method: "PUT",
          url: "/v1/meters/fx-2",
          headers: { "x-api-key": ADMIN_KEY },
          payload: { gatewayId: "gw-none" },
        });
        expect(unknownGateway.statusCode).toBe(400);
        expect((unknownGateway.json() as ApiErrorBody).error.details[0]?.path).toBe("body.gatewayId");
      });

      it("POST /v1/meters creates once; GET /v1/meters/:id shows the registry", async () => {
        const created = await app.inject({
          method: "POST",
          url: "/v1/meters",
          headers: { "x-api-key": ADMIN_KEY },
          payload: { meterId: "fx-3", customerId: "c-3", timeZone: "Europe/Berlin" },
        });
        expect(created.statusCode).toBe(201);
        expect(created.json()).toMatchObject({ meterId: "fx-3", customerId: "c-3", timeZone: "Europe/Berlin" });
        const again = await app.inject({
          method: "POST",
          url: "/v1/meters",
          headers: { "x-api-key": ADMIN_KEY },
          payload: { meterId: "fx-3" },
        });
        expect(again.statusCode).toBe(400);
        expect((await get("/v1/meters/fx-1")).json()).toMatchObject({
          meterId: "fx-1",
          gatewayId: "gw-fx",
          customerId: "c-9",
          tariffId: "t-flat",
          latitude: 52.52,
          longitude: 13.405,
          timeZone: "UTC",
        });
      });

      it("GET /v1/meters/:id/consumption/daily answers JSON and CSV", async () => {
        const json = await get("/v1/meters/fx-1/consumption/daily?from=2026-02-17&to=2026-02-19");
        expect(json.json()).toMatchObject({
          meterId: "fx-1",
          items: [
            { day: "2026-02-17", timeZone: "UTC", exportKwh: 0 },
            { day: "2026-02-18", timeZone: "UTC", exportKwh: 0 },
          ],
        });
        const csv = await get("/v1/meters/fx-1/consumption/daily?from=2026-02-18&to=2026-02-19", {
          "x-api-key": READ_KEY,
          accept: "text/csv",
        });
        expect(csv.headers["content-type"]).toMatch(/^text\/csv/);
        expect(csv.body).toMatch(
          /^day,timeZone,importKwh,exportKwh\r\n2026-02-18,UTC,(50|49\.9999\d*|50\.0000\d*),0\r\n$/,
        );
      });

      it("GET /v1/meters/:id/consumption/hourly gives the UTC hours", async () => {
        const body = (
          await get("/v1/meters/fx-1/consumption/hourly?from=2026-02-18T00:00:00Z&to=2026-02-18T03:00:00Z")
        ).json() as { items: { hourStart: string; importKwh: number }[] };
        expect(body.items.map((i) => i.hourStart)).toEqual([
          "2026-02-18T00:00:00.000Z",
          "2026-02-18T01:00:00.000Z",
          "2026-02-18T02:00:00.000Z",
        ]);
        for (const item of body.items) expect(item.importKwh).toBeCloseTo(50 / 24, 9);
      });

      it("GET /v1/outages groups by gateway with start and end; /v1/events lists the interruption", async () => {
        const outages = await get("/v1/outages?from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z");
        expect(outages.json()).toEqual({
          from: "2026-02-01T00:00:00.000Z",
          to: "2026-03-01T00:00:00.000Z",
          gateways: [
            {
              gatewayId: "gw-fx",
              outages: [
                {
                  meterId: "fx-1",
                  cause: "interruption",
                  startedAt: OUTAGE_AT,
                  endedAt: "2026-02-10T06:00:00.000Z",
                  latitude: 52.52,
                  longitude: 13.405,
                },
              ],
            },
          ],
        });
        const events = (
          await get("/v1/events?from=2026-02-10T00:00:00Z&to=2026-02-11T00:00:00Z&meterId=fx-1")
        ).json() as {
          items: { eventId: string; kind: string }[];
        };
        expect(events.items.map((e) => [e.eventId, e.kind])).toEqual([["int-1", "voltageInterruption"]]);
        await expectBadRequest("/v1/outages?from=2026-02-01T00:00:00Z", "querystring.to");
      });

      it("a gateway's last will opens an outage for its meters; silence opens one; readings end both", async () => {
        await store.recordStatus({ v: 1, gatewayId: "gw-fx", state: "offline" }, new Date("2026-03-01T00:30:00Z"));
        await store.landTelemetry(batch([{ ts: "2026-03-01T01:00:00.000Z", kwh: 10_000 }], 90_000), new Date());
        const silent = await store.openSilenceOutages(new Date("2026-03-01T03:00:00Z"), 90 * 60 * 1000);
        expect(silent).toBe(1);
        expect(await store.openSilenceOutages(new Date("2026-03-01T03:00:00Z"), 90 * 60 * 1000)).toBe(0);
        await store.landTelemetry(batch([{ ts: "2026-03-01T03:15:00.000Z", kwh: 10_001 }], 90_001), new Date());
        const rows = await store.outages(new Date("2026-03-01T00:00:00Z"), new Date("2026-03-02T00:00:00Z"));
        expect(rows.map((o) => [o.cause, o.startedAt, o.endedAt])).toEqual([
          ["gateway_offline", "2026-03-01T00:30:00.000Z", "2026-03-01T01:00:00.000Z"],
          ["silence", "2026-03-01T01:00:00.000Z", "2026-03-01T03:15:00.000Z"],
        ]);
      });
    });

    describe("documentation and limits", () => {
      it("serves the OpenAPI document and a local docs page without a key", async () => {
        const doc = await get("/openapi.json", {});
        expect(doc.statusCode).toBe(200);
        const body = doc.json() as { openapi: string; paths: Record<string, unknown> };
        expect(body.openapi).toBe("3.1.0");
        expect(Object.keys(body.paths)).toEqual(
          expect.arrayContaining([
            "/consumption/{aggregation}/{year}/{meter_id}",
            "/anomaly/{meter_id}",
            "/forecast/{meter_id}",
            "/outage",
            "/v1/outages",
            "/v1/meters/{id}",
          ]),
        );
        const anomaly = (
          body.paths["/anomaly/{meter_id}"] as { get: { parameters: { name: string; required?: boolean }[] } }
        ).get;
        expect(anomaly.parameters.filter((p) => p.required === true).map((p) => p.name)).toEqual(
          expect.arrayContaining(["meter_id", "data_start", "data_end"]),
        );
        const page = await get("/docs/", {});
        expect(page.statusCode).toBe(200);
        expect(page.body).toContain("swagger-ui");
        expect(page.body).not.toMatch(/https?:\/\/(cdn|unpkg|cdnjs)/);
      });

      it("limits requests per key (429) and request bodies (413)", async () => {
        const limited = await buildApi({
          store,
          meterData: store,
          logger: silent,
          rateLimitPerMinute: 3,
          bodyLimitBytes: 1024,
        });
        try {
          const statuses: number[] = [];
          for (let i = 0; i < 4; i++) {
            statuses.push(
              (await limited.inject({ method: "GET", url: "/v1/meters", headers: { "x-api-key": READ_KEY } }))
                .statusCode,
            );
          }
          expect(statuses).toEqual([200, 200, 200, 429]);
          const other = await limited.inject({ method: "GET", url: "/v1/meters", headers: { "x-api-key": ADMIN_KEY } });
          expect(other.statusCode).toBe(200);
          const big = await limited.inject({
            method: "PUT",
            url: "/v1/meters/fx-big",
            headers: { "x-api-key": ADMIN_KEY, "content-type": "application/json" },
            payload: JSON.stringify({ customerId: "x".repeat(2000) }),
          });
          expect(big.statusCode).toBe(413);
          expect((big.json() as ApiErrorBody).error.code).toBe("api.payloadTooLarge");
        } finally {
          await limited.close();
        }
      });
    });
  });
}

platformSuite("PGlite", async () => {
  const dir = tempDir("platform-api");
  const store = new PostgresStore({ sql: await PgliteSqlClient.open(dir.dir), logger: silent });
  return {
    store,
    async dispose() {
      await store.close();
      dir.remove();
    },
  };
});

const postgresUp = await postgresAvailable();
platformSuite(
  "the PostgreSQL server",
  async () => {
    const database = await createThrowawayDatabase();
    const store = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: database.url }), logger: silent });
    return {
      store,
      async dispose() {
        await store.close();
        await database.drop();
      },
    };
  },
  !postgresUp,
);
