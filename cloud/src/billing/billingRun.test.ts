import type { TelemetryPayload } from "@edgemeter/shared";
import { tempDir } from "@edgemeter/shared/testing";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PgSqlClient } from "../store/pgSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import type { SqlClient } from "../store/sqlClient.js";
import { createThrowawayDatabase, postgresAvailable } from "../store/throwawayDatabase.js";
import {
  assignTariff,
  cancelBill,
  finaliseBills,
  putTariff,
  type RunSummary,
  runBilling,
  type StoredBillContent,
} from "./billingRun.js";
import { BillingScheduler } from "./billingScheduler.js";

const logger = pino({ level: "silent" });
const HOUR = 3_600_000;
const NOW = () => new Date("2026-11-01T08:00:00Z");
const schedule = (weekday: number[], weekend: number[]) => ({
  weekday: Array.from({ length: 12 }, () => weekday),
  weekend: Array.from({ length: 12 }, () => weekend),
});
const tou = schedule(
  Array.from({ length: 24 }, (_, h) => (h >= 17 && h < 21 ? 1 : 0)),
  new Array<number>(24).fill(0),
);
const TARIFF = {
  label: "test TOU",
  currency: "EUR",
  energyratestructure: [[{ rate: 0.25 }], [{ rate: 0.4 }]],
  energyweekdayschedule: tou.weekday,
  energyweekendschedule: tou.weekend,
  fixedchargefirstmeter: 9.5,
  taxes: [{ name: "VAT", percent: 19 }],
};

/** Register of a meter at instant ms: 0.6 kW average with a daily swing. */
const register = (ms: number, base: number) =>
  base + 0.6 * (ms / HOUR) - (0.4 * 24 * Math.cos((2 * Math.PI * ms) / HOUR / 24)) / (2 * Math.PI);

let seq = 0;
async function land(
  store: PostgresStore,
  meterId: string,
  fromMs: number,
  toMs: number,
  skip?: (ms: number) => boolean,
) {
  const readings: TelemetryPayload["readings"] = [];
  for (let ms = fromMs; ms <= toMs; ms += 30 * 60_000) {
    if (skip?.(ms)) continue;
    readings.push({
      meterId,
      seq: ++seq,
      ts: new Date(ms).toISOString(),
      clock: "synced",
      values: { importEnergyKwh: register(ms - 1e12, 5000) },
    });
  }
  for (let i = 0; i < readings.length; i += 5000) {
    await store.landTelemetry(
      {
        v: 1,
        gatewayId: "gw-1",
        batchId: `b-${seq}-${i}`,
        sentAt: new Date(toMs).toISOString(),
        readings: readings.slice(i, i + 5000),
      },
      new Date(toMs),
    );
  }
}

async function bills(sql: SqlClient, period: string) {
  const { rows } = await sql.query<{
    id: string;
    meter_id: string;
    status: string;
    version: number;
    total_minor: string;
    content: StoredBillContent;
    content_sha256: string;
  }>(
    "SELECT id, meter_id, status, version, total_minor, content, content_sha256 FROM bills WHERE period = $1 ORDER BY meter_id, version",
    [period],
  );
  return rows;
}

function runSuite(
  name: string,
  open: () => Promise<{ store: PostgresStore; dispose(): Promise<void>; url?: string } | null>,
) {
  describe(`bill runs on ${name}`, () => {
    let subject: Awaited<ReturnType<typeof open>> = null;
    let sql: SqlClient;
    const run = (period: string, extra: Partial<Parameters<typeof runBilling>[1]> = {}): Promise<RunSummary> =>
      runBilling(sql, {
        period,
        dryRun: false,
        trigger: "cli",
        defaultZone: "America/New_York",
        now: NOW,
        logger,
        ...extra,
      });
    // The gap on m1 spans the end of October (local Berlin): filled later by a late batch.
    const gapFrom = Date.parse("2026-10-31T16:00:00Z");
    const gapTo = Date.parse("2026-11-01T05:00:00Z");

    beforeAll(async () => {
      subject = await open();
      if (subject === null) return;
      await subject.store.migrate();
      sql = subject.store.sql;
      await land(
        subject.store,
        "m1",
        Date.parse("2026-09-29T00:00:00Z"),
        Date.parse("2026-12-02T12:00:00Z"),
        (ms) => ms > gapFrom && ms < gapTo,
      );
      await land(subject.store, "m2", Date.parse("2026-09-29T00:00:00Z"), Date.parse("2026-11-03T00:00:00Z"));
      await sql.query("UPDATE meters SET time_zone = 'Europe/Berlin' WHERE meter_id = 'm1'");
      await putTariff(sql, "tou", TARIFF, "test");
      await assignTariff(sql, "m1", "tou", new Date("2026-01-01T00:00:00Z"));
      // m2 moves in on 11 October local (New York, the utility's default zone).
      await assignTariff(sql, "m2", "tou", new Date("2026-10-11T04:00:00Z"));
    }, 120_000);
    afterAll(async () => {
      await subject?.dispose();
    });

    it("bills every assigned meter; a second run changes nothing; a dry run writes nothing", async (context) => {
      if (subject === null) return context.skip();
      const dry = await run("2026-10", { dryRun: true });
      expect(dry).toMatchObject({ runId: null, meters: 2, billsCreated: 0 });
      expect(await bills(sql, "2026-10")).toEqual([]);
      const progress: number[] = [];
      const first = await run("2026-10", { onProgress: (done) => progress.push(done) });
      expect(first).toMatchObject({ meters: 2, billsCreated: 2, billsUnchanged: 0 });
      expect(progress.at(-1)).toBe(2);
      const before = await bills(sql, "2026-10");
      const second = await run("2026-10");
      expect(second).toMatchObject({ billsCreated: 0, billsUpdated: 0, billsUnchanged: 2 });
      expect(await bills(sql, "2026-10")).toEqual(before);
      const [m1, m2] = before;
      // m1's boundary at the end of October falls in a 13-hour gap: estimated and said so.
      expect(m1?.content.estimated).toBe(true);
      expect(m1?.content.flags.map((flag) => flag.code)).toContain("gap");
      expect(m2?.content.estimated).toBe(false);
      // m2 moved in on the 11th: fixed charge 9.50 × 21/31 = 6.435… → 6.44 (half-even on 643.5 → 644).
      expect(m2?.content.fixedMinor).toBe(644);
      const lines = m2?.content.lines ?? [];
      expect(lines.map((line) => line.kind)).toEqual(["energy", "energy", "fixed", "tax"]);
      expect(lines.reduce((sum, line) => sum + line.amountMinor, 0)).toBe(Number(m2?.total_minor));
    });

    it("finalised bills are immutable; late data becomes an adjustment on the next period", async (context) => {
      if (subject === null) return context.skip();
      expect(await finaliseBills(sql, "2026-10", "ops@utility", NOW())).toBe(2);
      const finalised = await bills(sql, "2026-10");
      await expect(sql.query("UPDATE bills SET total_minor = 1 WHERE period = '2026-10'")).rejects.toThrow(
        /finalised: it is immutable/,
      );
      await expect(sql.query("DELETE FROM bills WHERE period = '2026-10'")).rejects.toThrow(/cannot be deleted/);
      // The gap's readings arrive late: October's real consumption differs from the estimate.
      await land(subject.store, "m1", gapFrom + 30 * 60_000, gapTo - 30 * 60_000);
      const rerun = await run("2026-10");
      expect(rerun).toMatchObject({ adjustments: 1, billsUnchanged: 1, billsCreated: 0, billsUpdated: 0 });
      expect(await bills(sql, "2026-10")).toEqual(finalised);
      expect(await run("2026-10")).toMatchObject({ adjustments: 0, billsUnchanged: 2 });
      const november = await run("2026-11");
      expect(november.billsCreated).toBe(2);
      const m1 = (await bills(sql, "2026-11"))[0];
      const adjustment = m1?.content.lines.find((line) => line.kind === "adjustment");
      expect(adjustment?.description).toContain("adjustment for 2026-10");
      expect(adjustment?.amountMinor).not.toBe(0);
      expect(m1?.content.totalMinor).toBe((m1?.content.baseTotalMinor ?? 0) + (adjustment?.amountMinor ?? 0));
      // Running November again is still idempotent with the adjustment on it.
      expect(await run("2026-11")).toMatchObject({ billsUnchanged: 2 });
    });

    it("cancel is audited and the next run rebills a new version", async (context) => {
      if (subject === null) return context.skip();
      const m2 = (await bills(sql, "2026-10")).find((bill) => bill.meter_id === "m2");
      await expect(cancelBill(sql, Number(m2?.id), "ops@utility", " ", NOW())).rejects.toThrow(/needs a reason/);
      await cancelBill(sql, Number(m2?.id), "ops@utility", "wrong move-in date", NOW());
      const { rows: audit } = await sql.query<{ actor: string; detail: { reason: string } }>(
        "SELECT actor, detail FROM bill_audit WHERE action = 'cancel' AND bill_id = $1",
        [m2?.id],
      );
      expect(audit).toEqual([{ actor: "ops@utility", detail: { reason: "wrong move-in date" } }]);
      expect(await run("2026-10")).toMatchObject({ billsCreated: 1 });
      const versions = (await bills(sql, "2026-10")).filter((bill) => bill.meter_id === "m2");
      expect(versions.map((bill) => [bill.version, bill.status])).toEqual([
        [1, "cancelled"],
        [2, "draft"],
      ]);
    });

    if (name === "PostgreSQL") {
      it("two cloud instances: only one runs the scheduled job", async (context) => {
        if (subject === null || subject.url === undefined) return context.skip();
        const other = await PgSqlClient.open({ databaseUrl: subject.url });
        try {
          // Both schedulers fire at 08:00 on 1 December in New York, 150 ms from now.
          const offset = Date.parse("2026-12-01T13:00:00Z") - 150 - Date.now();
          const now = () => new Date(Date.now() + offset);
          const outcomes: RunSummary[] = [];
          const schedulers = [sql, other].map(
            (client) =>
              new BillingScheduler({
                sql: client,
                logger,
                zone: "America/New_York",
                now,
                onRun: (s) => outcomes.push(s),
              }),
          );
          expect(schedulers[0]?.nextFire(now().getTime()).period).toBe("2026-11");
          for (const scheduler of schedulers) scheduler.start();
          const deadline = Date.now() + 20_000;
          while (outcomes.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
          for (const scheduler of schedulers) await scheduler.stop();
          expect(outcomes).toHaveLength(2);
          expect(outcomes.filter((outcome) => outcome.skipped === undefined)).toHaveLength(1);
          const { rows } = await sql.query("SELECT id FROM bill_runs WHERE trigger = 'schedule'");
          expect(rows).toHaveLength(1);
        } finally {
          await other.close();
        }
      });
    }
  });
}

runSuite("PGlite", async () => {
  const dir = tempDir("billing");
  const store = new PostgresStore({ sql: await PgliteSqlClient.open(dir.dir), logger });
  return {
    store,
    async dispose() {
      await store.close();
      dir.remove();
    },
  };
});

runSuite("PostgreSQL", async () => {
  if (!(await postgresAvailable())) return null;
  const database = await createThrowawayDatabase();
  const store = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: database.url }), logger });
  return {
    store,
    url: database.url,
    async dispose() {
      await store.close();
      await database.drop();
    },
  };
});
