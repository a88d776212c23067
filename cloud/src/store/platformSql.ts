import { hourBuckets, localDayBuckets, qualityDeltas, type RegisterPoint, rollupDeltas } from "./consumptionRollups.js";
import type { SqlExecutor } from "./sqlClient.js";

/**
 * The SQL of the platform tables (migrations/0002_platform.sql) that runs inside the ingest
 * transaction: consumption rollups and outage start/end. Kept apart from postgresStore.ts
 * so the landing statements stay readable.
 */

export interface InsertedReading {
  meter_id: string;
  ts: unknown;
  import_energy_kwh?: unknown;
  export_energy_kwh?: unknown;
}

const REGISTERS = [
  { column: "import_energy_kwh", field: "import" },
  { column: "export_energy_kwh", field: "export" },
] as const;

function ms(value: unknown): number {
  return value instanceof Date ? value.getTime() : new Date(String(value)).getTime();
}

/**
 * Updates consumption_hourly and consumption_daily for readings just inserted in `tx`.
 * A per-meter advisory lock (taken after the inserts, in meter order, so two instances
 * landing batches of one meter serialize without deadlocking) makes every transaction see
 * the series as the previous one left it: its own new rows plus everything committed.
 */
export async function updateRollups(
  tx: SqlExecutor,
  inserted: readonly InsertedReading[],
  defaultTimeZone: string,
): Promise<void> {
  if (inserted.length === 0) return;
  const spans = new Map<string, { lo: number; hi: number; fresh: Set<number> }>();
  for (const row of inserted) {
    const t = ms(row.ts);
    const span = spans.get(row.meter_id);
    if (span === undefined) spans.set(row.meter_id, { lo: t, hi: t, fresh: new Set([t]) });
    else {
      span.lo = Math.min(span.lo, t);
      span.hi = Math.max(span.hi, t);
      span.fresh.add(t);
    }
  }
  const meterIds = [...spans.keys()].sort();
  await tx.query(
    "SELECT pg_advisory_xact_lock(hashtext('rollup:' || m)) FROM (SELECT m FROM unnest($1::text[]) AS m ORDER BY m) s",
    [meterIds],
  );
  const zones = new Map<string, string>();
  const { rows: meterRows } = await tx.query<{ meter_id: string; time_zone: string | null }>(
    "SELECT meter_id, time_zone FROM meters WHERE meter_id = ANY($1::text[])",
    [meterIds],
  );
  for (const row of meterRows) zones.set(row.meter_id, row.time_zone ?? defaultTimeZone);

  const hourly = new Map<
    string,
    {
      meterId: string;
      hourMs: number;
      import: number;
      export: number;
      readings: number;
      unsynced: number;
      gaps: number;
    }
  >();
  const hourEntry = (meterId: string, hourMs: number) => {
    const id = `${meterId}\u0000${hourMs}`;
    let entry = hourly.get(id);
    if (entry === undefined) {
      entry = { meterId, hourMs, import: 0, export: 0, readings: 0, unsynced: 0, gaps: 0 };
      hourly.set(id, entry);
    }
    return entry;
  };
  const daily = new Map<string, { meterId: string; day: string; zone: string; import: number; export: number }>();
  for (const register of REGISTERS) {
    const c = register.column;
    // Only meters whose new readings carry this register: looking for the neighbours of a
    // register no reading has would scan the meter's whole history.
    const withRegister = new Set(
      inserted.filter((row) => row[c] !== null && row[c] !== undefined).map((row) => row.meter_id),
    );
    const ids = meterIds.filter((id) => withRegister.has(id));
    if (ids.length === 0) continue;
    const params = [
      ids,
      ids.map((id) => new Date(spans.get(id)?.lo ?? 0).toISOString()),
      ids.map((id) => new Date(spans.get(id)?.hi ?? 0).toISOString()),
    ];
    // The meter's series from the last stored reading before the new ones to the first after.
    const { rows } = await tx.query<{ meter_id: string; ts: unknown; kwh: number; clock: string }>(
      `SELECT r.meter_id, r.ts, r.${c} AS kwh, r.clock
       FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS s(meter_id, lo, hi)
       CROSS JOIN LATERAL (SELECT
         COALESCE((SELECT max(p.ts) FROM readings p WHERE p.meter_id = s.meter_id AND p.ts < s.lo AND p.${c} IS NOT NULL), s.lo) AS lo,
         COALESCE((SELECT min(n.ts) FROM readings n WHERE n.meter_id = s.meter_id AND n.ts > s.hi AND n.${c} IS NOT NULL), s.hi) AS hi) b
       JOIN readings r ON r.meter_id = s.meter_id AND r.ts >= b.lo AND r.ts <= b.hi AND r.${c} IS NOT NULL
       ORDER BY r.meter_id, r.ts`,
      params,
    );
    const series = new Map<string, (RegisterPoint & { isNew: boolean; unsynced: boolean })[]>();
    for (const row of rows) {
      const t = ms(row.ts);
      const list = series.get(row.meter_id) ?? [];
      list.push({
        tsMs: t,
        kwh: Number(row.kwh),
        isNew: spans.get(row.meter_id)?.fresh.has(t) ?? false,
        unsynced: row.clock !== "synced",
      });
      series.set(row.meter_id, list);
    }
    for (const [meterId, points] of series) {
      for (const [key, kwh] of rollupDeltas(points, hourBuckets)) {
        hourEntry(meterId, Number(key))[register.field] += kwh;
      }
      // Data quality follows the import register (the one billed).
      if (register.field === "import") {
        for (const [key, quality] of qualityDeltas(points)) {
          const entry = hourEntry(meterId, Number(key));
          entry.readings += quality.readings;
          entry.unsynced += quality.unsyncedReadings;
          entry.gaps += quality.gapIntervals;
        }
      }
      const zone = zones.get(meterId) ?? defaultTimeZone;
      for (const [day, kwh] of rollupDeltas(points, localDayBuckets(zone))) {
        const id = `${meterId}\u0000${day}`;
        const entry = daily.get(id) ?? { meterId, day, zone, import: 0, export: 0 };
        entry[register.field] += kwh;
        daily.set(id, entry);
      }
    }
  }
  if (hourly.size > 0) {
    const entries = [...hourly.values()];
    await tx.query(
      `INSERT INTO consumption_hourly (meter_id, hour_start, import_kwh, export_kwh, readings, unsynced_readings, gap_intervals)
       SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::float8[], $4::float8[], $5::int[], $6::int[], $7::int[])
       ON CONFLICT (meter_id, hour_start) DO UPDATE SET
         import_kwh = consumption_hourly.import_kwh + EXCLUDED.import_kwh,
         export_kwh = consumption_hourly.export_kwh + EXCLUDED.export_kwh,
         readings = consumption_hourly.readings + EXCLUDED.readings,
         unsynced_readings = consumption_hourly.unsynced_readings + EXCLUDED.unsynced_readings,
         gap_intervals = consumption_hourly.gap_intervals + EXCLUDED.gap_intervals`,
      [
        entries.map((e) => e.meterId),
        entries.map((e) => new Date(e.hourMs).toISOString()),
        entries.map((e) => e.import),
        entries.map((e) => e.export),
        entries.map((e) => e.readings),
        entries.map((e) => e.unsynced),
        entries.map((e) => e.gaps),
      ],
    );
  }
  if (daily.size > 0) {
    const entries = [...daily.values()];
    await tx.query(
      `INSERT INTO consumption_daily (meter_id, day, time_zone, import_kwh, export_kwh)
       SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::float8[], $5::float8[])
       ON CONFLICT (meter_id, day) DO UPDATE SET
         import_kwh = consumption_daily.import_kwh + EXCLUDED.import_kwh,
         export_kwh = consumption_daily.export_kwh + EXCLUDED.export_kwh`,
      [
        entries.map((e) => e.meterId),
        entries.map((e) => e.day),
        entries.map((e) => e.zone),
        entries.map((e) => e.import),
        entries.map((e) => e.export),
      ],
    );
  }
}

/** Readings resumed: an open outage ends at the meter's first reading after it started. */
export async function endOutages(tx: SqlExecutor, inserted: readonly { meter_id: string }[]): Promise<void> {
  if (inserted.length === 0) return;
  const meterIds = [...new Set(inserted.map((row) => row.meter_id))];
  await tx.query(
    `UPDATE outages o SET ended_at = (SELECT min(r.ts) FROM readings r WHERE r.meter_id = o.meter_id AND r.ts > o.started_at)
     WHERE o.ended_at IS NULL AND o.meter_id = ANY($1::text[])
       AND EXISTS (SELECT 1 FROM readings r WHERE r.meter_id = o.meter_id AND r.ts > o.started_at)`,
    [meterIds],
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
  await tx.query("SELECT pg_advisory_xact_lock(hashtext('rollup:' || $1::text))", [meterId]);
  await tx.query("DELETE FROM consumption_hourly WHERE meter_id = $1", [meterId]);
  await tx.query("DELETE FROM consumption_daily WHERE meter_id = $1", [meterId]);
  const { rows } = await tx.query<InsertedReading>(
    "SELECT meter_id, ts, import_energy_kwh, export_energy_kwh FROM readings WHERE meter_id = $1 ORDER BY ts",
    [meterId],
  );
  await updateRollups(tx, rows, timeZone);
}
