/**
 * `npm run bench -- billing` (issue 7). A figure, not pass/fail:
 * bills N meters (default 100,000; env BILLING_BENCH_METERS) for one month (October 2026,
 * Europe/Berlin, 745 hours) under a 4-period TOU tariff with a TOU demand charge, from the data
 * as the store keeps it after ingest: hourly rollups (`consumption_hourly`, with the quality
 * counts of migrations/0004: 4 reads per hour, no gap, no unsynced read) and synced register
 * reads either side of each boundary. Populated directly by SQL (generate_series), which is the
 * fastest way and not what is measured.
 *
 * A sample of S meters (default 1,000; env BILLING_BENCH_SAMPLE) instead gets full 15-minute
 * register reads; the store's own ingest algorithm rebuilds their rollups (registerMeter with a
 * new zone → rebuildRollups), which are checked to agree with the generated ones (kWh and
 * quality counts, every hour).
 *
 * Measured end to end on the PostgreSQL server: `runBilling` — the CLI's `billing run` — for the
 * whole fleet: rollup quality check → boundary reads + rollup aggregates per TOU period → VEE
 * (boundary interpolation, interval-vs-register check; flagged meters fall back to raw reads) →
 * tariff engine → bill rows written, in ONE transaction under the billing advisory lock (its
 * chunk statements read by parallel connections on the run's snapshot, rollupRun.ts).
 * Baseline in the same run: one SQL aggregate that only sums each meter's consumption per TOU
 * period. Before the last line, where the run's time went (`phases`, seconds; summed over the
 * parallel connections, so they add up to more than the wall time). Last line:
 * {"bench":"billing","meterMonthsPerSecond":…,"ratioToSqlAggregate":…,"seconds":…}
 *
 * Development aids: BILLING_BENCH_DB=<name> keeps (and reuses) the populated database;
 * BILLING_BENCH_READERS and BILLING_BENCH_CHUNK set the run's reader connections and chunk size.
 */
import { randomBytes } from "node:crypto";
import { billing, PgSqlClient, PostgresStore } from "@edgemeter/cloud";
import { POSTGRES_URL } from "@edgemeter/shared/testing";
import pino from "pino";

const METERS = Number(process.env.BILLING_BENCH_METERS ?? 100_000);
const SAMPLE = Math.min(METERS, Number(process.env.BILLING_BENCH_SAMPLE ?? 1_000));
const PERIOD = "2026-10";
const ZONE = "Europe/Berlin";
const logger = pino({ level: "silent" });

const hoursOf = (from: number, to: number, value: (h: number) => number) =>
  Array.from({ length: 24 }, (_, h) => (h >= from && h < to ? value(h) : 0));
const weekday = hoursOf(7, 23, (h) => (h >= 17 && h < 21 ? 3 : h >= 11 && h < 15 ? 2 : 1));
const weekend = new Array<number>(24).fill(0);
const TARIFF_RECORD = {
  label: "bench TOU 4 periods + demand",
  currency: "EUR",
  energyratestructure: [[{ rate: 0.18 }], [{ rate: 0.26 }], [{ rate: 0.31 }], [{ rate: 0.42 }]],
  energyweekdayschedule: Array.from({ length: 12 }, () => weekday),
  energyweekendschedule: Array.from({ length: 12 }, () => weekend),
  demandratestructure: [[{ rate: 0 }], [{ rate: 4.5, max: 10 }, { rate: 7.25 }]],
  demandweekdayschedule: Array.from({ length: 12 }, () => hoursOf(17, 21, () => 1)),
  demandweekendschedule: Array.from({ length: 12 }, () => weekend),
  fixedchargefirstmeter: 9.9,
  taxes: [{ name: "VAT", percent: 19 }],
};

/**
 * Development aid: BILLING_BENCH_DB=<name> keeps the populated database under that name (and
 * reuses it when it already holds the same fleet: only its bills and runs are cleared), so the
 * billing run can be measured again without populating 75 M rollup rows each time.
 */
const KEEP_DB = process.env.BILLING_BENCH_DB;

async function main() {
  if (KEEP_DB !== undefined && !/^[a-z_][a-z0-9_]*$/.test(KEEP_DB))
    throw new Error(`BILLING_BENCH_DB: bad name "${KEEP_DB}"`);
  const name = KEEP_DB ?? `edgemeter_bench_billing_${randomBytes(4).toString("hex")}`;
  const admin = await PgSqlClient.open({ databaseUrl: POSTGRES_URL });
  const { rows: existing } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
  if (existing.length === 0) await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  const sql = await PgSqlClient.open({ databaseUrl: url.toString() });
  const store = new PostgresStore({ sql, logger, defaultTimeZone: ZONE });
  try {
    await store.migrate();
    const period = billing.billingPeriod(PERIOD, ZONE);
    const start = new Date(period.startMs).toISOString();
    const end = new Date(period.endMs).toISOString();
    const reuse = existing.length > 0 && (await populatedWith(sql)) === METERS;
    if (reuse) {
      console.log(`reusing ${name} (${METERS} meters): clearing its bills and runs`);
      await sql.query("TRUNCATE bill_audit, bill_adjustments, bills, bill_runs");
    } else if (existing.length > 0) {
      throw new Error(`BILLING_BENCH_DB=${name} exists but does not hold ${METERS} meters: drop it first`);
    } else await populate(sql, store, period, start, end);
    await measure(sql, period, start, end);
  } finally {
    await store.close();
    if (KEEP_DB === undefined) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.close();
  }
}

async function populatedWith(sql: PgSqlClient): Promise<number | null> {
  const { rows } = await sql.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM meter_tariffs WHERE tariff_id = 'bench-tou'",
  );
  return rows[0]?.n ?? null;
}

/** The sample's agreement, when this run populated the database (none when it reused one). */
let agreement: { compared: number; mismatches: number }[] = [];

async function populate(
  sql: PgSqlClient,
  store: PostgresStore,
  period: ReturnType<typeof billing.billingPeriod>,
  start: string,
  end: string,
) {
  const t0 = performance.now();
  console.log(`populating ${METERS} meters × ${period.hours + 2} hourly rollups (${SAMPLE} with 15-minute reads)…`);
  // Hourly kWh with a daily shape and a per-meter level; deterministic. The hour before and the
  // hour after the period hold the boundary reads.
  const hourlyKwh = `(0.15 + (i % 17) * 0.02) * (1 + 0.8 * sin(pi() * extract(hour FROM h) / 24.0))`;
  const hoursFrom = `$2::timestamptz - interval '1 hour'`;
  const hoursTo = `$3::timestamptz`;
  // Bulk load without the primary key, then build it once (a sorted index build beats 75 M inserts into a btree).
  await sql.query("ALTER TABLE consumption_hourly DROP CONSTRAINT consumption_hourly_pkey");
  await sql.query(
    `INSERT INTO consumption_hourly (meter_id, hour_start, import_kwh, export_kwh, readings, unsynced_readings, gap_intervals)
       SELECT 'm' || lpad(i::text, 6, '0'), h, ${hourlyKwh}, 0, 4, 0, 0
         FROM generate_series(1, $1::int) AS i, generate_series(${hoursFrom}, ${hoursTo}, interval '1 hour') AS h`,
    [METERS, start, end],
  );
  await sql.query("ALTER TABLE consumption_hourly ADD PRIMARY KEY (meter_id, hour_start)");
  console.log(`rollups generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  // Non-sample meters: synced reads 7.5 minutes either side of each boundary, on the straight
  // line through the hour they fall in (register = 1000 + meter number + kWh of the hours before).
  await sql.query(
    `WITH t AS (
         SELECT meter_id, 1000 + substr(meter_id, 2)::int AS base,
                sum(import_kwh) FILTER (WHERE hour_start < $2::timestamptz - interval '1 hour') AS before_last,
                max(import_kwh) FILTER (WHERE hour_start = $1::timestamptz - interval '1 hour') AS q0,
                max(import_kwh) FILTER (WHERE hour_start = $1::timestamptz) AS q1,
                max(import_kwh) FILTER (WHERE hour_start = $2::timestamptz - interval '1 hour') AS qe1,
                max(import_kwh) FILTER (WHERE hour_start = $2::timestamptz) AS qe
           FROM consumption_hourly WHERE meter_id > 'm' || lpad($3::text, 6, '0') GROUP BY meter_id)
       INSERT INTO readings (meter_id, ts, gateway_id, seq, clock, received_at, "values", import_energy_kwh)
       SELECT meter_id, ts, 'gw-bench', row_number() OVER (), 'synced', now(), '{}'::jsonb, value FROM (
         SELECT meter_id, $1::timestamptz - interval '450 seconds' AS ts, base + q0 * 0.875 AS value FROM t
         UNION ALL SELECT meter_id, $1::timestamptz + interval '450 seconds', base + q0 + q1 * 0.125 FROM t
         UNION ALL SELECT meter_id, $2::timestamptz - interval '450 seconds', base + before_last + qe1 * 0.875 FROM t
         UNION ALL SELECT meter_id, $2::timestamptz + interval '450 seconds', base + before_last + qe1 + qe * 0.125 FROM t) AS b`,
    [start, end, SAMPLE],
  );
  // Register at each hour start of the sample meters: 1000 + i + the kWh of the hours before.
  const registerAtHours = `SELECT i, h, ${hourlyKwh} AS q,
         1000 + i + sum(${hourlyKwh}) OVER (PARTITION BY i ORDER BY h) - ${hourlyKwh} AS r
       FROM generate_series(1, $1::int) AS i, generate_series(${hoursFrom}, ${hoursTo}, interval '1 hour') AS h`;
  // Sample meters: a read every 15 minutes (register linear within each hour).
  await sql.query(
    `WITH reg AS (${registerAtHours})
       INSERT INTO readings (meter_id, ts, gateway_id, seq, clock, received_at, "values", import_energy_kwh)
       SELECT 'm' || lpad(i::text, 6, '0'), h + k * interval '15 minutes', 'gw-bench', 1000000 + row_number() OVER (), 'synced',
              now(), '{}'::jsonb, r + q * k / 4.0
         FROM reg, generate_series(0, 3) AS k
       UNION ALL
       SELECT 'm' || lpad(i::text, 6, '0'), h + interval '1 hour', 'gw-bench', 999999, 'synced', now(), '{}'::jsonb, r + q
         FROM reg WHERE h = ${hoursTo}`,
    [SAMPLE, start, end],
  );
  // As the store keeps a finished month: vacuumed (hint bits set, visibility map current). Without
  // this the first statements to read the fresh rows pay for setting hint bits, and autovacuum
  // starts on the 75 M new rows in the middle of the measurement.
  await sql.query("VACUUM (ANALYZE) consumption_hourly");
  await sql.query("VACUUM (ANALYZE) readings");
  console.log(`populated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // The sample's rollups as the store's ingest computes them from the 15-minute reads.
  const s0 = performance.now();
  await sql.query(
    `CREATE TABLE generated_hourly AS SELECT * FROM consumption_hourly WHERE meter_id <= 'm' || lpad($1::text, 6, '0')`,
    [SAMPLE],
  );
  await sql.query(
    `INSERT INTO meters (meter_id, time_zone) SELECT 'm' || lpad(i::text, 6, '0'), 'UTC' FROM generate_series(1, $1::int) AS i`,
    [SAMPLE],
  );
  for (let i = 1; i <= SAMPLE; i++) {
    const meterId = `m${String(i).padStart(6, "0")}`;
    await store.registerMeter({
      meterId,
      gatewayId: null,
      customerId: null,
      tariffId: null,
      latitude: null,
      longitude: null,
      timeZone: ZONE,
    });
  }
  ({ rows: agreement } = await sql.query<{ compared: number; mismatches: number }>(
    `SELECT count(*)::int AS compared, count(*) FILTER (WHERE c.meter_id IS NULL OR abs(c.import_kwh - g.import_kwh) > 1e-9
                OR c.readings <> g.readings OR c.gap_intervals <> g.gap_intervals OR c.unsynced_readings <> g.unsynced_readings)::int AS mismatches
         FROM generated_hourly g LEFT JOIN consumption_hourly c USING (meter_id, hour_start)`,
  ));
  console.log(
    `sample: ingest rollups of ${SAMPLE} meters vs generated: ${agreement[0]?.compared} hours compared, ${agreement[0]?.mismatches} mismatches (${((performance.now() - s0) / 1000).toFixed(1)} s)`,
  );

  await billing.putTariff(sql, "bench-tou", TARIFF_RECORD, "bench tariff");
  await sql.query(
    `INSERT INTO meter_tariffs (meter_id, valid_from, tariff_id)
       SELECT 'm' || lpad(i::text, 6, '0'), '2026-01-01T00:00:00Z', 'bench-tou' FROM generate_series(1, $1::int) AS i`,
    [METERS],
  );
  await sql.query("ANALYZE");
}

async function measure(sql: PgSqlClient, period: ReturnType<typeof billing.billingPeriod>, start: string, end: string) {
  // Baseline: one SQL aggregate summing each meter's consumption per TOU period.
  const hourStarts: string[] = [];
  const energyPeriods: number[] = [];
  const calendar = billing.calendarFor(ZONE);
  for (let ms = period.startMs; ms < period.endMs; ms += 3_600_000) {
    hourStarts.push(new Date(ms).toISOString());
    const local = calendar.localTime(ms);
    energyPeriods.push((local.weekday === 0 || local.weekday === 6 ? weekend : weekday)[local.hour] ?? 0);
  }
  const b0 = performance.now();
  const { rows: baseline } = await sql.query(
    `WITH hours AS (SELECT * FROM unnest($1::timestamptz[], $2::int[]) AS h(hour_start, ep))
       SELECT c.meter_id, h.ep, sum(c.import_kwh) AS kwh FROM consumption_hourly c JOIN hours h USING (hour_start)
        WHERE c.hour_start >= $3 AND c.hour_start < $4 GROUP BY c.meter_id, h.ep`,
    [hourStarts, energyPeriods, start, end],
  );
  const baselineSeconds = (performance.now() - b0) / 1000;
  console.log(`SQL aggregate: ${baseline.length} meter-period sums in ${baselineSeconds.toFixed(2)} s`);

  const timings: Record<string, number> = {};
  const r0 = performance.now();
  const summary = await billing.runBilling(sql, {
    timings,
    ...(process.env.BILLING_BENCH_READERS === undefined ? {} : { readers: Number(process.env.BILLING_BENCH_READERS) }),
    ...(process.env.BILLING_BENCH_CHUNK === undefined ? {} : { chunkSize: Number(process.env.BILLING_BENCH_CHUNK) }),
    period: PERIOD,
    dryRun: false,
    trigger: "cli",
    defaultZone: ZONE,
    now: () => new Date(),
    logger,
    onProgress: (done, total) => process.stderr.write(`\rbilled ${done}/${total}`),
  });
  const seconds = (performance.now() - r0) / 1000;
  process.stderr.write("\n");
  const { rows: check } = await sql.query<{ n: string; rollups: string; estimated: string }>(
    `SELECT count(*) AS n, count(*) FILTER (WHERE content->>'source' = 'rollups') AS rollups,
              count(*) FILTER (WHERE estimated) AS estimated FROM bills WHERE period = $1`,
    [PERIOD],
  );
  console.log(
    `bills written: ${check[0]?.n} (${check[0]?.rollups} from rollups, the rest from raw readings), estimated: ${check[0]?.estimated}, total ${(summary.totalMinor / 100).toFixed(2)} EUR`,
  );
  const phases = Object.fromEntries(
    Object.entries(timings).map(([phase, ms]) => [phase, Number((ms / 1000).toFixed(2))]),
  );
  console.log(`phases (s): ${JSON.stringify(phases)}`);
  console.log(
    JSON.stringify({
      bench: "billing",
      meters: summary.meters,
      meterMonthsPerSecond: Math.round(summary.meters / seconds),
      ratioToSqlAggregate: Number((seconds / baselineSeconds).toFixed(2)),
      seconds: Number(seconds.toFixed(2)),
      sampleRollupMismatches: agreement[0]?.mismatches ?? null,
    }),
  );
}

await main();
