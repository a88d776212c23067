import type { TelemetryPayload } from "@edgemeter/shared";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../api/auth.js";
import { buildApi } from "../api/buildApi.js";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import { assignTariff, putTariff, runBilling } from "./billingRun.js";

const logger = pino({ level: "silent" });
const KEY = "billing-read-key-0123456789";
const flat = (p: number) => Array.from({ length: 12 }, () => new Array<number>(24).fill(p));

/**
 * The text of pdfkit's uncompressed content streams: each `[<hex> kern <hex>…] TJ` operator's
 * hex strings joined and decoded (Helvetica strings are WinAnsi bytes).
 */
function pdfText(pdf: Buffer): string[] {
  return [...pdf.toString("latin1").matchAll(/\[([^\]]*)\] TJ/g)].map((match) =>
    [...(match[1] ?? "").matchAll(/<([0-9a-fA-F]*)>/g)]
      .map((hex) => Buffer.from(hex[1] ?? "", "hex").toString("latin1"))
      .join(""),
  );
}

describe("billing API: runs, bills, CSV, invoice PDF", () => {
  let store: PostgresStore;
  let app: FastifyInstance;
  const get = (url: string) => app.inject({ method: "GET", url, headers: { "x-api-key": KEY } });

  beforeAll(async () => {
    store = new PostgresStore({ sql: await PgliteSqlClient.open(undefined), logger });
    await store.migrate();
    await store.createApiKey("reader", hashApiKey(KEY), ["read"]);
    const readings: TelemetryPayload["readings"] = [];
    const start = Date.parse("2026-09-30T00:00:00Z");
    for (let i = 0; i < 33 * 24; i++) {
      // 1 kWh per hour, except a 6-hour hole on 10 October (estimated, so the bill says so).
      const ts = start + i * 3_600_000;
      if (ts > Date.parse("2026-10-10T00:00:00Z") && ts < Date.parse("2026-10-10T06:00:00Z")) continue;
      readings.push({
        meterId: "m-api",
        seq: i + 1,
        ts: new Date(ts).toISOString(),
        clock: "synced",
        values: { importEnergyKwh: 100 + i },
      });
    }
    await store.landTelemetry(
      { v: 1, gatewayId: "gw-1", batchId: "b1", sentAt: "2026-11-03T00:00:00Z", readings },
      new Date(),
    );
    await putTariff(
      store.sql,
      "flat",
      {
        label: "flat",
        currency: "EUR",
        energyratestructure: [[{ rate: 0.3 }]],
        energyweekdayschedule: flat(0),
        energyweekendschedule: flat(0),
        fixedchargefirstmeter: 5,
      },
      "test",
    );
    await assignTariff(store.sql, "m-api", "flat", new Date("2026-01-01T00:00:00Z"));
    await runBilling(store.sql, {
      period: "2026-10",
      dryRun: false,
      trigger: "cli",
      defaultZone: "UTC",
      now: () => new Date("2026-11-01T08:00:00Z"),
      logger,
    });
    app = await buildApi({ store, logger });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });

  it("lists runs and bills, serves one bill with its lines", async () => {
    const runs = await get("/v1/bill-runs");
    expect(runs.statusCode).toBe(200);
    expect(runs.json().items).toMatchObject([{ id: 1, period: "2026-10", status: "done", meters: 1, billsCreated: 1 }]);
    const list = await get("/v1/bills?period=2026-10");
    expect(list.json().items).toMatchObject([{ meterId: "m-api", status: "draft", currency: "EUR", estimated: true }]);
    const id = list.json().items[0].id;
    const bill = await get(`/v1/bills/${id}`);
    expect(bill.statusCode).toBe(200);
    // 31 days × 24 h + the 1 kWh/h register: 744 kWh × 0.30 = 223.20, fixed 5.00.
    expect(bill.json().content.importKwh).toBeCloseTo(744, 6);
    expect(bill.json().total).toBe("228.20");
    expect(bill.json().content.lines.map((line: { kind: string }) => line.kind)).toEqual(["energy", "fixed"]);
    expect((await get("/v1/bills?period=2026-11")).json().items).toEqual([]);
  });

  it("refuses bad parameters and unknown ids with the JSON error shape", async () => {
    const bad = await get("/v1/bills?period=2026-13");
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain("period");
    expect((await get("/v1/bills/999")).statusCode).toBe(404);
    expect((await get("/v1/bill-runs/abc")).statusCode).toBe(400);
    expect((await app.inject({ method: "GET", url: "/v1/bills" })).statusCode).toBe(401);
  });

  it("exports a run as CSV and a bill as a PDF invoice marked estimated", async () => {
    const csv = await get("/v1/bill-runs/1/bills.csv");
    expect(csv.statusCode).toBe(200);
    expect(csv.headers["content-type"]).toContain("text/csv");
    const rows = csv.body.trim().split("\r\n");
    expect(rows[0]).toBe(
      "bill_id,meter_id,period,version,status,currency,opening_kwh,closing_kwh,import_kwh,energy,demand,fixed,minimum,export_credit,taxes,adjustment,total,estimated,vee_flags",
    );
    expect(rows[1]).toBe(
      "1,m-api,2026-10,1,draft,EUR,124.000,868.000,744.000,223.20,0.00,5.00,0.00,0.00,0.00,0.00,228.20,true,gap",
    );
    const pdf = await get("/v1/bills/1/invoice.pdf");
    expect(pdf.statusCode).toBe(200);
    expect(pdf.headers["content-type"]).toBe("application/pdf");
    expect(pdf.rawPayload.subarray(0, 5).toString()).toBe("%PDF-");
    const text = pdfText(pdf.rawPayload).join("\n");
    expect(text).toContain("ESTIMATED BILL");
    expect(text).toContain("Opening 2026-10-01T00:00:00.000Z: 124.000 kWh");
    expect(text).toContain("Period 1: 744.000 kWh");
    expect(text).toContain("energy period 1  (744.000 kWh x 0.3)");
    expect(text).toContain("228.20 EUR");
    expect(text).toContain("Daily consumption (kWh)");
    // The chart: one filled bar per day of October.
    expect(pdf.rawPayload.toString("latin1").match(/ re\n/g)?.length).toBeGreaterThanOrEqual(31);
  });
});
