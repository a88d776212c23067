import { hourBuckets, localDayBuckets, qualityDeltas, type RegisterPoint, rollupDeltas } from "./consumptionRollups.js";
import type { SqlExecutor } from "./sqlClient.js";

/**
 * The SQL of the platform tables (migrations/0002_platform.sql) that runs inside the ingest
 * transaction: consumption rollups and outage start/end. Kept apart from postgresStore.ts
 * so the landing statements stay readable.
 */

/** A reading as the rollups see it: when it was taken, its registers (null when not read), its clock. */
export interface SeriesPoint {
  tsMs: number;
  importKwh: number | null;
  exportKwh: number | null;
  unsynced: boolean;
}

/** What a batch holds for one meter: the time span of its readings and the registers they carry. */
export interface MeterSpan {
  meterId: string;
  loMs: number;
  hiMs: number;
  hasImport: boolean;
  hasExport: boolean;
}

/** A meter's stored readings around a batch, as loadStoredSeries found them. */
export interface StoredSeries {
  /** The zone of the meter's daily rollups: its own, or the default. */
  timeZone: string;
  /** Oldest first (see loadStoredSeries for the range). */
  points: SeriesPoint[];
}

const REGISTERS = [
  { field: "import", point: "importKwh" },
  { field: "export", point: "exportKwh" },
] as const;

function ms(value: unknown): number {
  return value instanceof Date ? value.getTime() : new Date(String(value)).getTime();
}

function numberOrNull(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/**
 * Takes the rollup lock of each meter (a transaction-scoped advisory lock, in meter order so
 * that two transactions locking overlapping sets cannot deadlock). Every writer of a meter's
 * readings or rollups holds it (telemetryLanding.ts takes it with ROLLUP_LOCK) from before it
 * reads the meter's stored series until it commits, so the series it reads after taking the
 * lock is complete: everything committed, nothing in flight.
 */
export async function lockRollups(tx: SqlExecutor, meterIds: readonly string[]): Promise<void> {
  if (meterIds.length === 0) return;
  await tx.query(`SELECT ${ROLLUP_LOCK("m")} FROM (SELECT m FROM unnest($1::text[]) AS m ORDER BY m) s`, [meterIds]);
}

/** The SQL call taking the rollup lock of the meter id in `column` (see lockRollups). */
export const ROLLUP_LOCK = (column: string): string => `pg_advisory_xact_lock(hashtext('rollup:' || ${column}))`;

/**
 * For each span (a meter's batch, or its late part; under the meters' rollup locks, before
 * the batch is inserted): the meter's zone and its stored readings from the last one before
 * the span that carries a register the span carries, to the first such one after it. That
 * covers every stored reading inside the span (so the caller can tell which of the batch's
 * readings are already stored) and the neighbours the new readings' intervals start and end
 * at. One query for all the meters. Only registers the span carries are looked for: the
 * neighbour of a register no reading has would scan the meter's whole history.
 */
export async function loadStoredSeries(
  tx: SqlExecutor,
  spans: readonly MeterSpan[],
  defaultTimeZone: string,
): Promise<Map<string, StoredSeries>> {
  const out = new Map<string, StoredSeries>();
  if (spans.length === 0) return out;
  const { rows } = await tx.query<{
    meter_id: string;
    time_zone: string | null;
    /** Epoch milliseconds: a float8 the driver reads as a number, cheaper than a timestamptz. */
    ts_ms: number | null;
    import_energy_kwh: unknown;
    export_energy_kwh: unknown;
    clock: string | null;
  }>(
    // The bounds first (MATERIALIZED: each subquery runs once per meter), then one index range
    // scan per meter (the lateral OFFSET 0 keeps the planner from hashing the whole table).
    `WITH b AS MATERIALIZED (
       SELECT s.meter_id,
         LEAST(s.lo,
           CASE WHEN s.has_import THEN (SELECT max(p.ts) FROM readings p
             WHERE p.meter_id = s.meter_id AND p.ts < s.lo AND p.import_energy_kwh IS NOT NULL) END,
           CASE WHEN s.has_export THEN (SELECT max(p.ts) FROM readings p
             WHERE p.meter_id = s.meter_id AND p.ts < s.lo AND p.export_energy_kwh IS NOT NULL) END) AS lo,
         GREATEST(s.hi,
           CASE WHEN s.has_import THEN (SELECT min(n.ts) FROM readings n
             WHERE n.meter_id = s.meter_id AND n.ts > s.hi AND n.import_energy_kwh IS NOT NULL) END,
           CASE WHEN s.has_export THEN (SELECT min(n.ts) FROM readings n
             WHERE n.meter_id = s.meter_id AND n.ts > s.hi AND n.export_energy_kwh IS NOT NULL) END) AS hi
       FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::boolean[], $5::boolean[])
         AS s(meter_id, lo, hi, has_import, has_export))
     SELECT b.meter_id, m.time_zone, (extract(epoch FROM r.ts) * 1000)::float8 AS ts_ms,
       r.import_energy_kwh, r.export_energy_kwh, r.clock
     FROM b LEFT JOIN meters m ON m.meter_id = b.meter_id
     LEFT JOIN LATERAL (SELECT r.ts, r.import_energy_kwh, r.export_energy_kwh, r.clock FROM readings r
       WHERE r.meter_id = b.meter_id AND r.ts >= b.lo AND r.ts <= b.hi OFFSET 0) r ON true
     ORDER BY b.meter_id, r.ts`,
    [
      spans.map((span) => span.meterId),
      spans.map((span) => new Date(span.loMs).toISOString()),
      spans.map((span) => new Date(span.hiMs).toISOString()),
      spans.map((span) => span.hasImport),
      spans.map((span) => span.hasExport),
    ],
  );
  for (const row of rows) {
    let series = out.get(row.meter_id);
    if (series === undefined) {
      series = { timeZone: row.time_zone ?? defaultTimeZone, points: [] };
      out.set(row.meter_id, series);
    }
    if (row.ts_ms === null) continue; // LEFT JOIN: nothing stored around the span.
    series.points.push({
      tsMs: Number(row.ts_ms),
      importKwh: numberOrNull(row.import_energy_kwh),
      exportKwh: numberOrNull(row.export_energy_kwh),
      unsynced: row.clock !== "synced",
    });
  }
  return out;
}

interface HourChange {
  meterId: string;
  hourMs: number;
  import: number;
  export: number;
  readings: number;
  unsynced: number;
  gaps: number;
}

interface DayChange {
  meterId: string;
  day: string;
  zone: string;
  import: number;
  export: number;
}

/**
 * The changes to consumption_hourly and consumption_daily that new readings make, collected
 * meter by meter (add), then written in one statement (applyRollupChanges).
 */
export class RollupChanges {
  readonly hourly = new Map<string, HourChange>();
  readonly daily = new Map<string, DayChange>();

  get isEmpty(): boolean {
    return this.hourly.size === 0 && this.daily.size === 0;
  }

  /**
   * Adds the changes of `fresh` (new readings of one meter, oldest first, none at the time of a
   * stored one) joining `stored` (the meter's stored readings around them, oldest first).
   */
  add(meterId: string, timeZone: string, stored: readonly SeriesPoint[], fresh: readonly SeriesPoint[]): void {
    if (fresh.length === 0) return;
    const merged = mergeSeries(stored, fresh);
    for (const register of REGISTERS) {
      const points: (RegisterPoint & { isNew: boolean; unsynced: boolean })[] = [];
      let anyNew = false;
      for (const { point, isNew } of merged) {
        const kwh = point[register.point];
        if (kwh === null) continue;
        points.push({ tsMs: point.tsMs, kwh, isNew, unsynced: point.unsynced });
        anyNew ||= isNew;
      }
      if (!anyNew) continue;
      for (const [key, kwh] of rollupDeltas(points, hourBuckets)) {
        this.#hour(meterId, Number(key))[register.field] += kwh;
      }
      // Data quality follows the import register (the one billed).
      if (register.field === "import") {
        for (const [key, quality] of qualityDeltas(points)) {
          const entry = this.#hour(meterId, Number(key));
          entry.readings += quality.readings;
          entry.unsynced += quality.unsyncedReadings;
          entry.gaps += quality.gapIntervals;
        }
      }
      for (const [day, kwh] of rollupDeltas(points, localDayBuckets(timeZone))) {
        const id = `${meterId}\u0000${day}`;
        let entry = this.daily.get(id);
        if (entry === undefined) {
          entry = { meterId, day, zone: timeZone, import: 0, export: 0 };
          this.daily.set(id, entry);
        }
        entry[register.field] += kwh;
      }
    }
  }

  #hour(meterId: string, hourMs: number): HourChange {
    const id = `${meterId}\u0000${hourMs}`;
    let entry = this.hourly.get(id);
    if (entry === undefined) {
      entry = { meterId, hourMs, import: 0, export: 0, readings: 0, unsynced: 0, gaps: 0 };
      this.hourly.set(id, entry);
    }
    return entry;
  }
}

/** Two series in time order as one, each point marked new or not. */
function mergeSeries(
  stored: readonly SeriesPoint[],
  fresh: readonly SeriesPoint[],
): { point: SeriesPoint; isNew: boolean }[] {
  const out: { point: SeriesPoint; isNew: boolean }[] = [];
  let i = 0;
  let j = 0;
  while (i < stored.length || j < fresh.length) {
    const old = stored[i];
    const young = fresh[j];
    if (young === undefined || (old !== undefined && old.tsMs < young.tsMs)) {
      out.push({ point: old as SeriesPoint, isNew: false });
      i++;
    } else {
      out.push({ point: young, isNew: true });
      j++;
    }
  }
  return out;
}

/**
 * Writes the collected rollup changes (added to the stored buckets: each landing contributes
 * its difference) and ends the open outages of the meters whose readings resumed: one
 * statement, after the readings were inserted in this transaction.
 */
export async function applyRollupChanges(
  tx: SqlExecutor,
  changes: RollupChanges,
  resumedMeterIds: readonly string[],
): Promise<void> {
  if (changes.isEmpty && resumedMeterIds.length === 0) return;
  const hourly = [...changes.hourly.values()];
  const daily = [...changes.daily.values()];
  await tx.query(
    `WITH hourly AS (
       INSERT INTO consumption_hourly (meter_id, hour_start, import_kwh, export_kwh, readings, unsynced_readings, gap_intervals)
       SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::int[], $6::int[], $7::int[])
       ON CONFLICT (meter_id, hour_start) DO UPDATE SET
         import_kwh = consumption_hourly.import_kwh + EXCLUDED.import_kwh,
         export_kwh = consumption_hourly.export_kwh + EXCLUDED.export_kwh,
         readings = consumption_hourly.readings + EXCLUDED.readings,
         unsynced_readings = consumption_hourly.unsynced_readings + EXCLUDED.unsynced_readings,
         gap_intervals = consumption_hourly.gap_intervals + EXCLUDED.gap_intervals
     ), daily AS (
       INSERT INTO consumption_daily (meter_id, day, time_zone, import_kwh, export_kwh)
       SELECT * FROM unnest($8::text[], $9::date[], $10::text[], $11::float8[], $12::float8[])
       ON CONFLICT (meter_id, day) DO UPDATE SET
         import_kwh = consumption_daily.import_kwh + EXCLUDED.import_kwh,
         export_kwh = consumption_daily.export_kwh + EXCLUDED.export_kwh
     )
     -- Readings resumed: an open outage ends at the meter's first reading after it started.
     UPDATE outages o SET ended_at = (SELECT min(r.ts) FROM readings r WHERE r.meter_id = o.meter_id AND r.ts > o.started_at)
     WHERE o.ended_at IS NULL AND o.meter_id = ANY($13::text[])
       AND EXISTS (SELECT 1 FROM readings r WHERE r.meter_id = o.meter_id AND r.ts > o.started_at)`,
    [
      hourly.map((e) => e.meterId),
      hourly.map((e) => new Date(e.hourMs).toISOString()),
      hourly.map((e) => e.import),
      hourly.map((e) => e.export),
      hourly.map((e) => e.readings),
      hourly.map((e) => e.unsynced),
      hourly.map((e) => e.gaps),
      daily.map((e) => e.meterId),
      daily.map((e) => e.day),
      daily.map((e) => e.zone),
      daily.map((e) => e.import),
      daily.map((e) => e.export),
      resumedMeterIds,
    ],
  );
}

/**
 * A voltage interruption (the gateway's event, IEC 61000-4-30 §5.5: all phases below 5 % of
 * nominal) opens an outage at its start; its end event closes it, as do resumed readings.
 */
export async function startInterruptionOutages(
  tx: SqlExecutor,
  gatewayId: string,
  events: readonly { meter_id: string; kind: string; state: string; ts: unknown }[],
): Promise<void> {
  for (const event of events) {
    if (event.kind !== "voltageInterruption") continue;
    const at = new Date(ms(event.ts)).toISOString();
    if (event.state === "end") {
      await tx.query(
        `UPDATE outages SET ended_at = $2::timestamptz
         WHERE meter_id = $1 AND ended_at IS NULL AND cause = 'interruption' AND started_at <= $2::timestamptz`,
        [event.meter_id, at],
      );
    } else {
      await tx.query(
        `INSERT INTO outages (meter_id, gateway_id, cause, started_at) VALUES ($1, $2, 'interruption', $3::timestamptz)
         ON CONFLICT (meter_id) WHERE ended_at IS NULL DO NOTHING`,
        [event.meter_id, gatewayId, at],
      );
    }
  }
}

/** The gateway's last will (offline): every meter behind it is in outage from now. */
export async function startGatewayOfflineOutages(tx: SqlExecutor, gatewayId: string, at: Date): Promise<void> {
  await tx.query(
    `INSERT INTO outages (meter_id, gateway_id, cause, started_at)
     SELECT meter_id, gateway_id, 'gateway_offline', $2::timestamptz FROM meters WHERE gateway_id = $1
     ON CONFLICT (meter_id) WHERE ended_at IS NULL DO NOTHING`,
    [gatewayId, at.toISOString()],
  );
}

/**
 * Recomputes a meter's rollups from all its readings (after its time zone changed): the
 * same apportioning as at ingest, with every reading counted as new.
 */
export async function rebuildRollups(tx: SqlExecutor, meterId: string, timeZone: string): Promise<void> {
  await lockRollups(tx, [meterId]);
  await tx.query("DELETE FROM consumption_hourly WHERE meter_id = $1", [meterId]);
  await tx.query("DELETE FROM consumption_daily WHERE meter_id = $1", [meterId]);
  const { rows } = await tx.query<{
    ts: unknown;
    import_energy_kwh: unknown;
    export_energy_kwh: unknown;
    clock: string;
  }>("SELECT ts, import_energy_kwh, export_energy_kwh, clock FROM readings WHERE meter_id = $1 ORDER BY ts", [meterId]);
  const changes = new RollupChanges();
  changes.add(
    meterId,
    timeZone,
    [],
    rows.map((row) => ({
      tsMs: ms(row.ts),
      importKwh: numberOrNull(row.import_energy_kwh),
      exportKwh: numberOrNull(row.export_energy_kwh),
      unsynced: row.clock !== "synced",
    })),
  );
  await applyRollupChanges(tx, changes, []);
}
