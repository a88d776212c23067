import type { TelemetryPayload } from "@edgemeter/shared";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgSqlClient } from "./pgSqlClient.js";
import { PostgresStore } from "./postgresStore.js";
import type { SqlClient, SqlExecutor } from "./sqlClient.js";
import { createThrowawayDatabase, postgresAvailable, type ThrowawayDatabase } from "./throwawayDatabase.js";

/**
 * The landing path of a PostgreSQL server (telemetryLanding.ts: look under the rollup locks,
 * COPY only what is new) under concurrency: two instances landing overlapping, out-of-order
 * and replayed batches of the same meters at once, and a writer that inserts a reading
 * without the locks while a landing is under way.
 */

const logger = pino({ level: "silent" });
const MINUTE_MS = 60_000;
const START = Date.UTC(2026, 2, 28, 20, 0); // across the Europe/Berlin DST night of 2026-03-29
const METERS = ["cc-m1", "cc-m2", "cc-m3"];

interface Read {
  meterId: string;
  seq: number;
  ts: string;
  kwh: number;
  clock: "synced" | "unsynced";
}

/** Ten hours of 5-minute reads per meter, with a gap and a register reset in the middle. */
function series(suffix = ""): Read[] {
  const out: Read[] = [];
  METERS.forEach((meterId, m) => {
    let kwh = 1000 * (m + 1);
    for (let i = 0; i <= 120; i++) {
      if (i > 40 && i < 52) continue; // an hour without reads: longer than the gap threshold
      kwh = i === 80 ? 2.5 : kwh + 0.05 + m * 0.01 + (i % 7) * 0.003; // 80: meter replaced
      out.push({
        meterId: `${meterId}${suffix}`,
        seq: m * 1000 + i,
        ts: new Date(START + i * 5 * MINUTE_MS).toISOString(),
        kwh,
        clock: i % 17 === 0 ? "unsynced" : "synced",
      });
    }
  });
  return out;
}

function payload(gatewayId: string, batchId: string, reads: readonly Read[]): TelemetryPayload {
  return {
    v: 1,
    gatewayId,
    batchId,
    sentAt: "2026-03-29T12:00:00.000Z",
    readings: reads.map((r) => ({
      meterId: r.meterId,
      seq: r.seq,
      ts: r.ts,
      clock: r.clock,
      values: { importEnergyKwh: r.kwh, exportEnergyKwh: r.kwh / 10, voltageL1V: 230 },
    })),
  };
}

/** Overlapping slices in a shuffled order, and some of them twice. */
function overlappingBatches(gatewayId: string, reads: readonly Read[]): TelemetryPayload[] {
  const out: TelemetryPayload[] = [];
  for (let start = 0, n = 0; start < reads.length; start += 23, n++) {
    out.push(payload(gatewayId, `b${n}`, reads.slice(start, start + 31)));
  }
  // A fixed shuffle (so a failure replays): every third batch from the end first, then the rest.
  const shuffled = [...out.filter((_, i) => i % 3 === 2).reverse(), ...out.filter((_, i) => i % 3 !== 2)];
  return [...shuffled, out[4] as TelemetryPayload, out[9] as TelemetryPayload];
}

interface RollupRows {
  hourly: { meter: string; hour: string; import_kwh: number; export_kwh: number; q: string }[];
  daily: { meter: string; day: string; import_kwh: number; export_kwh: number }[];
}

/** The rollups of meters `cc-m<n><suffix>`, keyed without the suffix so two copies compare. */
async function rollups(store: PostgresStore, suffix: string): Promise<RollupRows> {
  const pattern = `^cc-m[0-9]+${suffix}$`;
  const hourly = await store.sql.query<RollupRows["hourly"][number]>(
    `SELECT replace(meter_id, $2, '') AS meter, to_char(hour_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24') AS hour,
       import_kwh, export_kwh, readings || '/' || unsynced_readings || '/' || gap_intervals AS q
     FROM consumption_hourly WHERE meter_id ~ $1 ORDER BY 1, 2`,
    [pattern, suffix],
  );
  const daily = await store.sql.query<RollupRows["daily"][number]>(
    `SELECT replace(meter_id, $2, '') AS meter, to_char(day, 'YYYY-MM-DD') AS day, import_kwh, export_kwh
     FROM consumption_daily WHERE meter_id ~ $1 ORDER BY 1, 2`,
    [pattern, suffix],
  );
  return { hourly: hourly.rows, daily: daily.rows };
}

function expectSameRollups(actual: RollupRows, expected: RollupRows): void {
  expect(actual.hourly.map((r) => `${r.meter} ${r.hour} ${r.q}`)).toEqual(
    expected.hourly.map((r) => `${r.meter} ${r.hour} ${r.q}`),
  );
  actual.hourly.forEach((row, i) => {
    const want = expected.hourly[i] as RollupRows["hourly"][number];
    expect(row.import_kwh, `${row.meter} ${row.hour}`).toBeCloseTo(want.import_kwh, 9);
    expect(row.export_kwh, `${row.meter} ${row.hour}`).toBeCloseTo(want.export_kwh, 9);
  });
  expect(actual.daily.map((r) => `${r.meter} ${r.day}`)).toEqual(expected.daily.map((r) => `${r.meter} ${r.day}`));
  actual.daily.forEach((row, i) => {
    const want = expected.daily[i] as RollupRows["daily"][number];
    expect(row.import_kwh, `${row.meter} ${row.day}`).toBeCloseTo(want.import_kwh, 9);
    expect(row.export_kwh, `${row.meter} ${row.day}`).toBeCloseTo(want.export_kwh, 9);
  });
}

describe("landing telemetry concurrently on a PostgreSQL server", () => {
  let database: ThrowawayDatabase | null = null;
  let stores: PostgresStore[] = [];

  beforeAll(async () => {
    if (!(await postgresAvailable())) return;
    database = await createThrowawayDatabase();
    const url = database.url;
    // Two instances: two pools, as two cloud processes would have.
    stores = [
      new PostgresStore({
        sql: await PgSqlClient.open({ databaseUrl: url }),
        logger,
        defaultTimeZone: "Europe/Berlin",
      }),
      new PostgresStore({
        sql: await PgSqlClient.open({ databaseUrl: url }),
        logger,
        defaultTimeZone: "Europe/Berlin",
      }),
    ];
    await (stores[0] as PostgresStore).migrate();
  }, 60_000);
  afterAll(async () => {
    for (const store of stores) await store.close();
    await database?.drop();
  });

  it("two instances landing overlapping, shuffled and replayed batches at once: every reading once, rollups as if landed in order", async (context) => {
    if (database === null) context.skip();
    const [a, b] = stores as [PostgresStore, PostgresStore];
    // The reference: the same series under other meter ids, landed in one batch.
    const reference = series("-seq");
    expect(await a.landTelemetry(payload("gw-cc", "all", reference), new Date())).toEqual({
      inserted: reference.length,
      duplicates: 0,
    });

    const reads = series();
    const batches = overlappingBatches("gw-cc", reads);
    // Both instances get every batch, interleaved: each reading arrives 2-4 times.
    const results = await Promise.all(
      batches.flatMap((batch, i) => [
        a.landTelemetry(batch, new Date()),
        b.landTelemetry(batches[batches.length - 1 - i] as TelemetryPayload, new Date()),
      ]),
    );
    const inserted = results.reduce((sum, r) => sum + r.inserted, 0);
    const offered = batches.reduce((sum, batch) => sum + batch.readings.length, 0) * 2;
    expect(inserted).toBe(reads.length);
    expect(results.reduce((sum, r) => sum + r.duplicates, 0)).toBe(offered - reads.length);

    const { rows } = await a.sql.query<{ n: string; distinct_keys: string }>(
      "SELECT count(*)::text AS n, count(DISTINCT (meter_id, ts))::text AS distinct_keys FROM readings WHERE meter_id NOT LIKE '%-seq'",
    );
    expect(rows[0]).toEqual({ n: String(reads.length), distinct_keys: String(reads.length) });
    expectSameRollups(await rollups(a, ""), await rollups(a, "-seq"));
  }, 120_000);

  it("a reading inserted meanwhile by a writer without the rollup locks: the landing starts over, counting it as stored", async (context) => {
    if (database === null) context.skip();
    const [store] = stores as [PostgresStore];
    const reads = series("-x").filter((r) => r.meterId === "cc-m1-x");
    const [first, rest] = [reads.slice(0, 10), reads.slice(10)];
    await store.landTelemetry(payload("gw-cc", "x0", first), new Date());
    const intruder = rest[20] as Read;

    const other = new pg.Client({ connectionString: (database as ThrowawayDatabase).url });
    await other.connect();
    try {
      await other.query("BEGIN");
      await other.query(
        `INSERT INTO readings (meter_id, ts, gateway_id, seq, clock, received_at, "values", import_energy_kwh, export_energy_kwh)
         VALUES ($1, $2, 'gw-cc', $3, $4, now(), $5, $6, $7)`,
        [
          intruder.meterId,
          intruder.ts,
          intruder.seq,
          intruder.clock,
          JSON.stringify({ importEnergyKwh: intruder.kwh, exportEnergyKwh: intruder.kwh / 10, voltageL1V: 230 }),
          intruder.kwh,
          intruder.kwh / 10,
        ],
      );
      const landing = store.landTelemetry(payload("gw-cc", "x1", rest), new Date());
      // The landing's COPY reaches the intruder's uncommitted row and waits for it.
      const { rows: me } = await other.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      for (let waited = 0; ; waited += 20) {
        const { rows } = await other.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND $1 = ANY(pg_blocking_pids(pid))",
          [me[0]?.pid],
        );
        if (rows[0]?.n === "1") break;
        if (waited > 10_000) throw new Error("the landing never waited for the intruder's row");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await other.query("COMMIT");
      expect(await landing).toEqual({ inserted: rest.length - 1, duplicates: 1 });
    } finally {
      await other.end();
    }
    const { rows } = await store.sql.query<{ n: string; distinct_keys: string }>(
      "SELECT count(*)::text AS n, count(DISTINCT ts)::text AS distinct_keys FROM readings WHERE meter_id = 'cc-m1-x'",
    );
    expect(rows[0]).toEqual({ n: String(reads.length), distinct_keys: String(reads.length) });
    // (Its rollups miss the intruder's own intervals: only landTelemetry maintains them.)
  }, 60_000);

  it("a batch continuing a meter's series skips the stored-readings lookup, unless another instance landed meanwhile", async (context) => {
    if (database === null) context.skip();
    const url = (database as ThrowawayDatabase).url;
    const lookups = { count: 0 };
    const counting = (sql: SqlClient): SqlClient => {
      const wrap = (executor: SqlExecutor): SqlExecutor => ({
        ...executor,
        query: (text, params) => {
          if (text.includes("WITH b AS MATERIALIZED")) lookups.count++;
          return executor.query(text, params);
        },
        ...(executor.copyFrom === undefined ? {} : { copyFrom: executor.copyFrom.bind(executor) }),
      });
      return {
        kind: sql.kind,
        query: (text, params) => sql.query(text, params),
        exec: (text) => sql.exec(text),
        transaction: (fn) => sql.transaction((tx) => fn(wrap(tx))),
        close: () => sql.close(),
      };
    };
    const a = new PostgresStore({ sql: counting(await PgSqlClient.open({ databaseUrl: url })), logger });
    const b = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: url }), logger });
    try {
      const reads = series("-f");
      const slice = (meter: string, from: number, to: number) =>
        reads.filter((r) => r.meterId === `${meter}-f`).slice(from, to);
      // The last read of cc-m3's first batch has no energy register: nothing to start its next interval at.
      const m3first = slice("cc-m3", 0, 20).map((r, i) => (i === 19 ? { ...r, kwh: Number.NaN } : r));
      const first = payload("gw-cf", "f1", [...slice("cc-m1", 0, 20), ...slice("cc-m2", 0, 20)]);
      const m3 = payload("gw-cf", "f1b", m3first);
      for (const reading of m3.readings) {
        if (Number.isNaN(reading.values.importEnergyKwh)) reading.values = { voltageL1V: 230 };
      }
      await a.landTelemetry(first, new Date());
      await a.landTelemetry(m3, new Date());
      expect(lookups.count).toBe(2); // Nothing remembered yet.

      // Continuing cc-m1 and cc-m2: what A remembers is current, no lookup.
      await a.landTelemetry(payload("gw-cf", "f2", [...slice("cc-m1", 20, 40), ...slice("cc-m2", 20, 40)]), new Date());
      expect(lookups.count).toBe(2);
      // cc-m3's newest reading lacks the register its next batch carries: looked up.
      await a.landTelemetry(payload("gw-cf", "f2b", slice("cc-m3", 20, 40)), new Date());
      expect(lookups.count).toBe(3);

      // Instance B continues cc-m1: A's memory of it is now stale, and A must notice.
      await b.landTelemetry(payload("gw-cf", "f3", slice("cc-m1", 40, 60)), new Date());
      await a.landTelemetry(
        payload("gw-cf", "f4", [...slice("cc-m1", 60, 200), ...slice("cc-m2", 40, 200)]),
        new Date(),
      );
      expect(lookups.count).toBe(4);
      await a.landTelemetry(payload("gw-cf", "f4b", slice("cc-m3", 40, 200)), new Date());
      expect(lookups.count).toBe(4); // f2b's landing taught A cc-m3's newest reading.

      // cc-m3 lacks one import reading (the one read without a register): compare without it.
      const reference = series("-fr").filter((r) => !(r.meterId === "cc-m3-fr" && r.ts === m3first[19]?.ts));
      await b.landTelemetry(payload("gw-cf", "fr", reference), new Date());
      expectSameRollups(await rollups(a, "-f"), await rollups(a, "-fr"));
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);

  it("a batch with late readings and newer ones looks up only what is around the late ones", async (context) => {
    if (database === null) context.skip();
    const url = (database as ThrowawayDatabase).url;
    const looked: number[] = [];
    const sql = await PgSqlClient.open({ databaseUrl: url });
    const recording: SqlClient = {
      kind: sql.kind,
      query: (text, params) => sql.query(text, params),
      exec: (text) => sql.exec(text),
      transaction: (fn) =>
        sql.transaction((tx) =>
          fn({
            ...tx,
            query: async <T>(text: string, params?: readonly unknown[]) => {
              const result = await tx.query<T>(text, params);
              if (text.includes("WITH b AS MATERIALIZED")) looked.push(result.rows.length);
              return result;
            },
            ...(tx.copyFrom === undefined ? {} : { copyFrom: tx.copyFrom.bind(tx) }),
          }),
        ),
      close: () => sql.close(),
    };
    const store = new PostgresStore({ sql: recording, logger });
    try {
      const reads = series("-l").filter((r) => r.meterId === "cc-m2-l");
      const late = reads[30] as Read;
      await store.landTelemetry(
        payload(
          "gw-cl",
          "l1",
          reads.slice(0, 40).filter((r) => r !== late),
        ),
        new Date(),
      );
      expect(looked).toEqual([1]); // the meter's first landing: nothing stored yet (one empty row)
      await store.landTelemetry(payload("gw-cl", "l2", [late, ...reads.slice(40, 70)]), new Date());
      // Only the neighbours of the late reading came back, not the nine stored after them.
      expect(looked).toEqual([1, 2]);
      await store.landTelemetry(payload("gw-cl", "l3", reads.slice(70)), new Date());
      expect(looked).toEqual([1, 2]);

      const reference = series("-lr").filter((r) => r.meterId === "cc-m2-lr");
      await store.landTelemetry(payload("gw-cl", "lr", reference), new Date());
      const expected = await rollups(store, "-lr");
      expectSameRollups(await rollups(store, "-l"), expected);
      expect(expected.daily.length).toBeGreaterThan(0);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("a COPY whose rows cannot be produced is aborted: nothing lands and the connection stays usable", async (context) => {
    if (database === null) context.skip();
    const sql = await PgSqlClient.open({ databaseUrl: (database as ThrowawayDatabase).url });
    try {
      function* rows(): Generator<string> {
        yield "cc-abort\t2026-03-28T20:00:00.000Z\tgw-cc\t1\tsynced\t2026-03-28T20:00:00.000Z\t{}\t\\N\t\\N\t\\N\n";
        throw new Error("producer broke");
      }
      const failed = sql.transaction(async (tx) => {
        if (tx.copyFrom === undefined) throw new Error("the PostgreSQL client has COPY");
        return tx.copyFrom(
          `COPY readings (meter_id, ts, gateway_id, seq, clock, received_at, "values", errors, import_energy_kwh, export_energy_kwh) FROM STDIN`,
          rows(),
        );
      });
      await expect(failed).rejects.toThrow(/producer broke/);
      const copied = await sql.transaction(async (tx) =>
        tx.copyFrom?.(
          `COPY readings (meter_id, ts, gateway_id, seq, clock, received_at, "values", errors, import_energy_kwh, export_energy_kwh) FROM STDIN`,
          ["cc-abort\t2026-03-28T20:00:00.000Z\tgw-cc\t1\tsynced\t2026-03-28T20:00:00.000Z\t{}\t\\N\t\\N\t\\N\n"],
        ),
      );
      expect(copied).toBe(1);
      const { rows: n } = await sql.query<{ n: string }>(
        "SELECT count(*)::text AS n FROM readings WHERE meter_id = 'cc-abort'",
      );
      expect(n[0]?.n).toBe("1");
    } finally {
      await sql.close();
    }
  });
});
