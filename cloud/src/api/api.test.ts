import { EdgemeterError, type TelemetryPayload } from "@edgemeter/shared";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import type { Store } from "../store/store.js";
import type { ApiErrorBody } from "./apiErrors.js";
import { hashApiKey } from "./auth.js";
import { buildApi } from "./buildApi.js";
import { MemoryStore } from "./testing/memoryStore.js";

const NOW = new Date("2026-03-10T12:00:00.000Z");
const READ_KEY = "read-key-0123456789";
const ADMIN_KEY = "admin-key-0123456789";
const REVOKED_KEY = "revoked-key-0123456789";
const silent = pino({ level: "silent" });

function telemetry(
  readings: { meterId: string; seq: number; ts: string; importEnergyKwh: number }[],
): TelemetryPayload {
  return {
    v: 1,
    gatewayId: "gw-1",
    batchId: `b-${readings[0]?.seq ?? 0}`,
    sentAt: NOW.toISOString(),
    readings: readings.map((r) => ({
      meterId: r.meterId,
      seq: r.seq,
      ts: r.ts,
      clock: "synced",
      values: { importEnergyKwh: r.importEnergyKwh, voltageL1V: 230.1 },
    })),
  };
}

async function seedKeys(store: Store): Promise<void> {
  await store.createApiKey("reader", hashApiKey(READ_KEY), ["read"]);
  await store.createApiKey("admin", hashApiKey(ADMIN_KEY), ["admin"]);
  const revoked = await store.createApiKey("old", hashApiKey(REVOKED_KEY), ["read", "admin"]);
  await store.revokeApiKey(revoked.id);
}

function errorOf(response: { json(): unknown }): ApiErrorBody["error"] {
  return (response.json() as ApiErrorBody).error;
}

interface StoreUnderTest {
  /** A store holding no data (a new one, or the shared one emptied). */
  fresh(): Promise<Store>;
  closeAll(): Promise<void>;
}

/** The same suite runs over the in-memory fake and over the real PGlite store (CONVENTIONS §9). */
function apiSuite(name: string, storeUnderTest: StoreUnderTest): void {
  describe(`REST API over ${name}`, () => {
    let store: Store;
    let app: FastifyInstance;

    beforeEach(async () => {
      store = await storeUnderTest.fresh();
      await seedKeys(store);
      app = await buildApi({ store, logger: silent, now: () => NOW, ingestStats: () => ({ landed: 7 }) });
    });
    afterEach(async () => {
      await app.close();
    });
    afterAll(async () => {
      await storeUnderTest.closeAll();
    });

    const get = (url: string, headers: Record<string, string> = { "x-api-key": READ_KEY }) =>
      app.inject({ method: "GET", url, headers });

    describe("authentication", () => {
      it("serves /health without a key", async () => {
        const response = await get("/health", {});
        expect(response.statusCode).toBe(200);
        expect(response.json()).toEqual({ status: "ok" });
      });

      it("answers 401 JSON without a key", async () => {
        const response = await get("/v1/meters", {});
        expect(response.statusCode).toBe(401);
        expect(response.headers["content-type"]).toMatch(/^application\/json/);
        expect(response.json()).toEqual({
          error: {
            code: "api.unauthorized",
            message: "an API key is required: send it as x-api-key or Authorization: Bearer",
            details: [],
          },
        });
      });

      it("accepts the key as x-api-key and as Authorization: Bearer", async () => {
        expect((await get("/v1/meters", { "x-api-key": READ_KEY })).statusCode).toBe(200);
        expect((await get("/v1/meters", { authorization: `Bearer ${READ_KEY}` })).statusCode).toBe(200);
      });

      it("refuses an unknown key, a revoked key and a non-Bearer Authorization", async () => {
        const unknown = await get("/v1/meters", { "x-api-key": "not-a-key" });
        expect(unknown.statusCode).toBe(401);
        expect(errorOf(unknown).message).toBe("unknown API key");

        const revoked = await get("/v1/meters", { authorization: `Bearer ${REVOKED_KEY}` });
        expect(revoked.statusCode).toBe(401);
        expect(errorOf(revoked).message).toBe("this API key was revoked");

        const basic = await get("/v1/meters", { authorization: `Basic ${READ_KEY}` });
        expect(basic.statusCode).toBe(401);
        expect(errorOf(basic).code).toBe("api.unauthorized");
      });

      it("answers 403 when the key lacks the route's scope, and admin keys may read", async () => {
        await store.recordRejected(
          { topic: "edgemeter/v1/gw/gw-1/telemetry", reason: "bad json", payload: Buffer.from("{") },
          NOW,
        );
        const forbidden = await get("/v1/rejected-messages");
        expect(forbidden.statusCode).toBe(403);
        expect(errorOf(forbidden)).toEqual({
          code: "api.forbidden",
          message: "this API key lacks the 'admin' scope",
          details: [],
        });

        const allowed = await get("/v1/rejected-messages", { "x-api-key": ADMIN_KEY });
        expect(allowed.statusCode).toBe(200);
        expect(allowed.json()).toMatchObject({
          total: 1,
          limit: 100,
          offset: 0,
          items: [{ topic: "edgemeter/v1/gw/gw-1/telemetry", reason: "bad json", payloadText: "{" }],
        });
        expect((await get("/v1/meters", { "x-api-key": ADMIN_KEY })).statusCode).toBe(200);
      });

      it("does not reveal unknown routes to callers without a key", async () => {
        const anonymous = await get("/v1/nothing-here", {});
        expect(anonymous.statusCode).toBe(401);
        const known = await get("/v1/nothing-here?x=1");
        expect(known.statusCode).toBe(404);
        expect(errorOf(known)).toEqual({ code: "api.notFound", message: "no route GET /v1/nothing-here", details: [] });
      });
    });

    describe("meters and readings", () => {
      beforeEach(async () => {
        await store.landTelemetry(
          telemetry([
            { meterId: "m-1", seq: 1, ts: "2026-03-08T12:00:00.000Z", importEnergyKwh: 100 },
            { meterId: "m-1", seq: 2, ts: "2026-03-10T09:00:00.000Z", importEnergyKwh: 101.5 },
            { meterId: "m-1", seq: 3, ts: "2026-03-10T10:00:00.000Z", importEnergyKwh: 102.25 },
            { meterId: "m-1", seq: 4, ts: "2026-03-10T11:00:00.000Z", importEnergyKwh: 103 },
            { meterId: "m-2", seq: 5, ts: "2026-03-10T11:00:00.000Z", importEnergyKwh: 7 },
          ]),
          NOW,
        );
      });

      it("lists meters with paging", async () => {
        const all = await get("/v1/meters");
        expect(all.statusCode).toBe(200);
        expect(all.json()).toMatchObject({ limit: 100, offset: 0, items: [{ meterId: "m-1" }, { meterId: "m-2" }] });
        const second = await get("/v1/meters?limit=1&offset=1");
        expect(second.json()).toMatchObject({ limit: 1, offset: 1, items: [{ meterId: "m-2", gatewayId: "gw-1" }] });
        expect(second.json().items).toHaveLength(1);
      });

      it("returns one meter, and 404 JSON for an unknown one", async () => {
        const meter = await get("/v1/meters/m-1");
        expect(meter.statusCode).toBe(200);
        expect(meter.json()).toMatchObject({
          meterId: "m-1",
          gatewayId: "gw-1",
          lastReadingAt: "2026-03-10T11:00:00.000Z",
        });

        for (const url of ["/v1/meters/m-404", "/v1/meters/m-404/readings"]) {
          const missing = await get(url);
          expect(missing.statusCode).toBe(404);
          expect(errorOf(missing)).toEqual({ code: "api.notFound", message: "meter m-404 not found", details: [] });
        }
      });

      it("round-trips readings in [from, to), oldest first, with values and paging", async () => {
        const response = await get("/v1/meters/m-1/readings?from=2026-03-10T09:00:00Z&to=2026-03-10T11:00:00.000Z");
        expect(response.statusCode).toBe(200);
        const body = response.json();
        expect(body).toMatchObject({
          meterId: "m-1",
          from: "2026-03-10T09:00:00.000Z",
          to: "2026-03-10T11:00:00.000Z",
        });
        expect(body.items).toEqual([
          expect.objectContaining({
            meterId: "m-1",
            gatewayId: "gw-1",
            seq: 2,
            ts: "2026-03-10T09:00:00.000Z",
            clock: "synced",
            values: { importEnergyKwh: 101.5, voltageL1V: 230.1 },
          }),
          expect.objectContaining({
            seq: 3,
            ts: "2026-03-10T10:00:00.000Z",
            values: { importEnergyKwh: 102.25, voltageL1V: 230.1 },
          }),
        ]);

        const page = await get(
          "/v1/meters/m-1/readings?from=2026-03-01T00:00:00Z&to=2026-03-11T00:00:00Z&limit=2&offset=1",
        );
        expect(page.json().items.map((r: { seq: number }) => r.seq)).toEqual([2, 3]);

        // A time with an offset means the same instant as its UTC form.
        const offset = await get(
          "/v1/meters/m-1/readings?from=2026-03-10T10:00:00%2B01:00&to=2026-03-10T11:00:00%2B01:00",
        );
        expect(offset.json().items.map((r: { seq: number }) => r.seq)).toEqual([2]);
      });

      it("defaults to = now and from = to - 24 h", async () => {
        const response = await get("/v1/meters/m-1/readings");
        expect(response.statusCode).toBe(200);
        const body = response.json();
        expect(body.from).toBe("2026-03-09T12:00:00.000Z");
        expect(body.to).toBe(NOW.toISOString());
        expect(body.items.map((r: { seq: number }) => r.seq)).toEqual([2, 3, 4]);

        const onlyFrom = await get("/v1/meters/m-1/readings?from=2026-03-10T10:30:00Z");
        expect(onlyFrom.json().items.map((r: { seq: number }) => r.seq)).toEqual([4]);
      });

      it("lists gateways", async () => {
        const response = await get("/v1/gateways");
        expect(response.statusCode).toBe(200);
        expect(response.json()).toMatchObject({ limit: 100, offset: 0, items: [{ gatewayId: "gw-1" }] });
      });
    });

    describe("bad input", () => {
      beforeEach(async () => {
        await store.landTelemetry(
          telemetry([{ meterId: "m-1", seq: 1, ts: "2026-03-10T09:00:00.000Z", importEnergyKwh: 1 }]),
          NOW,
        );
      });

      const cases: { url: string; path: string; message: string }[] = [
        {
          url: "/v1/meters/m-1/readings?from=yesterday",
          path: "querystring.from",
          message: "must be an ISO 8601 time",
        },
        {
          url: "/v1/meters/m-1/readings?to=2026-03-10T09:00:00",
          path: "querystring.to",
          message: "must be an ISO 8601 time",
        },
        {
          url: "/v1/meters/m-1/readings?from=2026-03-10T09:00:00Z&to=2026-03-10T09:00:00Z",
          path: "querystring.from",
          message: "must be before to",
        },
        {
          url: "/v1/meters/m-1/readings?from=2026-03-11T00:00:00Z",
          path: "querystring.from",
          message: "must be before to",
        },
        {
          url: "/v1/meters/m-1/readings?limit=10001",
          path: "querystring.limit",
          message: "must be between 1 and 10000",
        },
        { url: "/v1/meters?limit=0", path: "querystring.limit", message: "must be between 1 and 1000" },
        { url: "/v1/meters?limit=ten", path: "querystring.limit", message: "must be a whole number" },
        { url: "/v1/meters?offset=-1", path: "querystring.offset", message: "must be a whole number" },
        { url: "/v1/meters?limit=1&limit=2", path: "querystring.limit", message: "must be given once" },
        { url: "/v1/meters/bad%20id", path: "params.id", message: "must be 1-64 characters" },
        { url: "/v1/meters?color=red", path: "querystring", message: "color" },
      ];

      for (const c of cases) {
        it(`answers 400 naming ${c.path} for ${c.url}`, async () => {
          const response = await get(c.url);
          expect(response.statusCode).toBe(400);
          const error = errorOf(response);
          expect(error.code).toBe("api.badRequest");
          expect(error.message.startsWith(`${c.path}: `)).toBe(true);
          expect(error.message).toContain(c.message);
          expect(error.details[0]?.path).toBe(c.path);
        });
      }

      it("names every bad parameter at once", async () => {
        const response = await get("/v1/meters/m-1/readings?from=x&limit=0");
        expect(response.statusCode).toBe(400);
        expect(errorOf(response).details.map((d) => d.path)).toEqual(["querystring.from", "querystring.limit"]);
      });
    });

    it("answers a malformed URL with the same JSON error shape", async () => {
      const response = await get("/v1/meters/%zz");
      expect(response.statusCode).toBe(400);
      expect(errorOf(response).code).toBe("api.badRequest");
    });

    it("serves this instance's ingest counters to admins", async () => {
      const response = await get("/v1/ingest/stats", { "x-api-key": ADMIN_KEY });
      expect(response.json()).toEqual({ stats: { landed: 7 } });
    });
  });
}

apiSuite("the in-memory store", {
  fresh: async () => new MemoryStore(),
  closeAll: async () => {},
});

// One PGlite database for the suite (opening one takes seconds), emptied before each test.
let pglite: PostgresStore | undefined;
apiSuite("the PGlite store", {
  async fresh() {
    if (pglite === undefined) {
      pglite = new PostgresStore({ sql: await PgliteSqlClient.open(), logger: silent });
      await pglite.migrate();
    }
    const { rows } = await pglite.sql.query<{ name: string }>(
      "SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'",
    );
    if (rows.length > 0)
      await pglite.sql.exec(`TRUNCATE ${rows.map((r) => r.name).join(", ")} RESTART IDENTITY CASCADE`);
    return pglite;
  },
  async closeAll() {
    await pglite?.close();
  },
});

describe("REST API when the store fails", () => {
  class FailingStore extends MemoryStore {
    constructor(private readonly failure: Error) {
      super();
    }
    override async listMeters(): Promise<never> {
      throw this.failure;
    }
  }

  async function answerWhenListMetersThrows(failure: Error) {
    const store = new FailingStore(failure);
    await seedKeys(store);
    const app = await buildApi({ store, logger: silent });
    try {
      return await app.inject({ method: "GET", url: "/v1/meters", headers: { "x-api-key": READ_KEY } });
    } finally {
      await app.close();
    }
  }

  it("answers 500 JSON without leaking the internal message", async () => {
    const response = await answerWhenListMetersThrows(new Error("connect ECONNREFUSED db.internal:5432"));
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: { code: "internal.error", message: "internal error", details: [] } });
  });

  it("answers 503 when the store says retrying may succeed", async () => {
    const response = await answerWhenListMetersThrows(
      new EdgemeterError("storage.unavailable", "database unreachable at db.internal", { retryable: true }),
    );
    expect(response.statusCode).toBe(503);
    expect(errorOf(response).code).toBe("api.unavailable");
    expect(errorOf(response).message).not.toContain("db.internal");
  });
});
