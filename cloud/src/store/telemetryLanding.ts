import { EdgemeterError, type TelemetryPayload } from "@edgemeter/shared";
import {
  applyRollupChanges,
  loadStoredSeries,
  type MeterSpan,
  ROLLUP_LOCK,
  RollupChanges,
  type SeriesPoint,
  type StoredSeries,
} from "./platformSql.js";
import type { SqlExecutor } from "./sqlClient.js";
import type { LandResult } from "./store.js";

/**
 * How a telemetry batch lands (PostgresStore.landTelemetry), in one transaction:
 *
 *  1. the gateway and the batch's meters are upserted and the meters' rollup locks taken
 *     (row locks, gateway then meters in meter order, then the advisory locks: the order every
 *     other writer of those rows takes them in); the meters' last_reading_at before the batch
 *     comes back (upsertGatewayAndMeters);
 *  2. the stored readings the new ones join: for a batch continuing a meter's series, its
 *     newest reading, which this process remembers (LatestReadings); otherwise one query reads
 *     the stored readings around the batch, or around its late part (loadStoredSeries);
 *  3. the readings not stored yet are known from that (the locks keep any other writer of
 *     these meters out until commit), and their rollup changes are computed;
 *  4. only those readings are written: COPY on a PostgreSQL server (a plain insert, no
 *     ON CONFLICT per row: about twice the rows per second), a multi-row INSERT on PGlite;
 *  5. one statement adds the rollup changes and ends the outages of meters that reported.
 *
 * A replayed batch finds all its readings stored in step 2 and writes nothing in 4 and 5.
 * Should a reading appear anyway between 2 and 4 (a writer that skipped the locks or
 * last_reading_at), COPY fails on the primary key or the INSERT stores fewer rows than
 * expected: the transaction rolls back with a retryable storage.conflict, and the store lands
 * the batch again looking every stored reading up, now seeing that one as stored. A reading
 * is never stored twice, nor counted twice in the rollups.
 */

/** One reading of a batch, as landed. */
export interface BatchReading {
  reading: TelemetryPayload["readings"][number];
  tsMs: number;
}

/** A meter's readings in a batch: unique by time, oldest first. */
export interface BatchMeter {
  meterId: string;
  readings: BatchReading[];
  /** The newest reading's ts (ISO), for meters.last_reading_at. */
  lastTs: string;
  span: MeterSpan;
}

export interface PreparedBatch {
  gatewayId: string;
  /** In meter id order (code units): every lock this transaction takes follows it. */
  meters: BatchMeter[];
  /** Readings in the payload, duplicates within it included. */
  total: number;
  /** One instant per UTC month the batch touches, for the partitions. */
  months: Date[];
}

/** Sorts and groups a batch by meter; a reading repeated within the batch is kept once (the first). */
export function prepareBatch(payload: TelemetryPayload): PreparedBatch {
  const byMeter = new Map<string, BatchReading[]>();
  const months = new Map<string, Date>();
  // The UTC month of the reading before: consecutive readings mostly share it.
  let monthStartMs = 0;
  let monthEndMs = -1;
  for (const reading of payload.readings) {
    const tsMs = Date.parse(reading.ts);
    let list = byMeter.get(reading.meterId);
    if (list === undefined) {
      list = [];
      byMeter.set(reading.meterId, list);
    }
    list.push({ reading, tsMs });
    if (tsMs < monthStartMs || tsMs >= monthEndMs) {
      const at = new Date(tsMs);
      monthStartMs = Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1);
      monthEndMs = Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1);
      if (!months.has(String(monthStartMs))) months.set(String(monthStartMs), at);
    }
  }
  const meters: BatchMeter[] = [];
  for (const meterId of [...byMeter.keys()].sort(compareStrings)) {
    const all = byMeter.get(meterId) as BatchReading[];
    // Stable: of two readings at the same time, the first in the batch stays.
    all.sort((a, b) => a.tsMs - b.tsMs);
    let repeated = false;
    for (let i = 1; i < all.length && !repeated; i++) {
      repeated = (all[i - 1] as BatchReading).tsMs === (all[i] as BatchReading).tsMs;
    }
    const readings = repeated
      ? all.filter((item, i) => i === 0 || (all[i - 1] as BatchReading).tsMs !== item.tsMs)
      : all;
    const { hasImport, hasExport } = registersOf(readings, 0, readings.length);
    const first = readings[0] as BatchReading;
    const last = readings[readings.length - 1] as BatchReading;
    meters.push({
      meterId,
      readings,
      lastTs: last.reading.ts,
      span: { meterId, loMs: first.tsMs, hiMs: last.tsMs, hasImport, hasExport },
    });
  }
  return {
    gatewayId: payload.gatewayId,
    meters,
    total: payload.readings.length,
    months: [...months.values()],
  };
}

/**
 * What this process knows of meters' newest stored reading, from its own landings, so that a
 * batch continuing a meter's series (the usual case) needs no look at the stored readings:
 * its intervals start at that reading, and nothing is stored at or after its readings' times.
 * An entry is used only while meters.last_reading_at, read under the meter's row lock in the
 * landing's own transaction, still names the same instant: readings are never deleted or
 * changed, every landing moves last_reading_at to its newest reading, so then no reading is
 * newer (whichever instance landed it), and the newest one is the one remembered. Otherwise
 * (another instance landed newer readings, a restart) the stored readings are looked up.
 * Entries are written only after the landing's commit.
 */
export class LatestReadings {
  readonly #byMeter = new Map<string, LatestReading>();
  readonly #maxMeters: number;

  constructor(maxMeters = 200_000) {
    this.#maxMeters = maxMeters;
  }

  get(meterId: string): LatestReading | undefined {
    return this.#byMeter.get(meterId);
  }

  set(meterId: string, latest: LatestReading): void {
    // Re-inserted at the end: the first key is the one least recently landed, evicted first.
    this.#byMeter.delete(meterId);
    this.#byMeter.set(meterId, latest);
    if (this.#byMeter.size > this.#maxMeters) {
      const oldest = this.#byMeter.keys().next();
      if (oldest.done !== true) this.#byMeter.delete(oldest.value);
    }
  }

  delete(meterId: string): void {
    this.#byMeter.delete(meterId);
  }
}

/** A meter's newest stored reading: its time and registers (null when it lacks one). */
export interface LatestReading {
  tsMs: number;
  importKwh: number | null;
  exportKwh: number | null;
}

/** What a landing returns: its result, and what to remember once it committed. */
export interface LandedBatch {
  result: LandResult;
  /** To call after the commit (never before: an entry must describe committed rows). */
  remember(latest: LatestReadings): void;
}

/**
 * Step 1 to 5 above; run inside the batch's transaction. `trustMeters`: whether to rely on
 * meters.last_reading_at (and what `latest` remembers) to know what is stored; false makes
 * every meter's stored readings be looked up (after a conflict: see PostgresStore).
 */
export async function landPreparedBatch(
  tx: SqlExecutor,
  batch: PreparedBatch,
  receivedAtIso: string,
  defaultTimeZone: string,
  latest: LatestReadings,
  trustMeters = true,
): Promise<LandedBatch> {
  const previous = await upsertGatewayAndMeters(tx, batch, receivedAtIso);

  // Step 2, the stored readings each meter's new ones join: known without a look where possible.
  const stored = new Map<string, StoredSeries>();
  const plans = new Map<string, StoredPlan>();
  const lookUp: MeterSpan[] = [];
  for (const meter of batch.meters) {
    const before = previous.get(meter.meterId);
    const plan = trustMeters ? planStored(meter, before?.lastMs ?? null, latest) : { lookUp: meter.span, known: null };
    plans.set(meter.meterId, plan);
    if (plan.lookUp !== null) lookUp.push(plan.lookUp);
    else stored.set(meter.meterId, { timeZone: before?.timeZone ?? defaultTimeZone, points: [] });
  }
  if (lookUp.length > 0) {
    for (const [meterId, series] of await loadStoredSeries(tx, lookUp, defaultTimeZone)) stored.set(meterId, series);
  }
  for (const [meterId, plan] of plans) {
    const series = stored.get(meterId);
    const known = plan.known;
    if (series === undefined || known === null) continue;
    // The meter's newest reading, after the looked-up ones (unless the look reached it).
    const last = series.points[series.points.length - 1];
    if (last === undefined || last.tsMs < known.tsMs) {
      series.points.push({ tsMs: known.tsMs, importKwh: known.importKwh, exportKwh: known.exportKwh, unsynced: false });
    }
  }

  const fresh: BatchReading[] = [];
  const resumed: { meter: BatchMeter; series: StoredSeries; newOnes: BatchReading[] }[] = [];
  for (const meter of batch.meters) {
    const series = stored.get(meter.meterId) ?? { timeZone: defaultTimeZone, points: [] };
    const newOnes = notStored(meter, series.points);
    if (newOnes.length === 0) continue;
    resumed.push({ meter, series, newOnes });
    for (const item of newOnes) fresh.push(item);
  }
  let written: Promise<number> | null = null;
  if (fresh.length > 0) {
    written = insertReadings(tx, batch.gatewayId, receivedAtIso, fresh);
    // Awaited below; until then the rollups are computed, and a failure must not count as unhandled.
    written.catch(() => undefined);
  }
  // While the server inserts: the rollup changes.
  const changes = new RollupChanges();
  for (const { meter, series, newOnes } of resumed) {
    changes.add(meter.meterId, series.timeZone, series.points, newOnes.map(toSeriesPoint));
  }
  if (written !== null && (await written) !== fresh.length) {
    throw new EdgemeterError(
      "storage.conflict",
      `expected to insert ${fresh.length} new readings, the database took fewer: another writer inserted some meanwhile`,
      { retryable: true, context: { gatewayId: batch.gatewayId } },
    );
  }
  await applyRollupChanges(
    tx,
    changes,
    resumed.map(({ meter }) => meter.meterId),
  );
  return {
    result: { inserted: fresh.length, duplicates: batch.total - fresh.length },
    remember(latestReadings: LatestReadings): void {
      for (const meter of batch.meters) {
        const lastMs = previous.get(meter.meterId)?.lastMs ?? null;
        const newest = meter.readings[meter.readings.length - 1] as BatchReading;
        const storedAfter = stored.get(meter.meterId)?.points.some((point) => point.tsMs > newest.tsMs) ?? false;
        if (trustMeters && (lastMs === null || newest.tsMs > lastMs) && !storedAfter) {
          // The meter's newest reading is now this batch's newest, stored by this transaction.
          const values = newest.reading.values;
          latestReadings.set(meter.meterId, {
            tsMs: newest.tsMs,
            importKwh: values.importEnergyKwh ?? null,
            exportKwh: values.exportEnergyKwh ?? null,
          });
        } else if (!trustMeters || latestReadings.get(meter.meterId)?.tsMs !== lastMs) {
          // The newest reading did not change; what this process thought of it may be wrong.
          latestReadings.delete(meter.meterId);
        }
      }
    },
  };
}

/**
 * How a meter's stored readings around a batch are found. Every stored reading of a meter is
 * at or before meters.last_reading_at (`lastMs`, read under the row lock: every landing moves
 * it to its newest reading, and readings are never deleted), so the batch's readings after it
 * are new, and only those at or before it (a late part) need a look at what is stored, from
 * the last reading before them to the first after. The newer ones start at the meter's newest
 * reading, taken from `latest` when that remembers this very reading and the registers they
 * carry; when it does not, the whole batch span is looked up. For the rollups it does not
 * matter that stored readings between the late part and the newest one are left out: an
 * interval between two stored readings changes only when new readings fall between them
 * (platformSql RollupChanges).
 */
interface StoredPlan {
  /** The span to look up, or null when nothing needs looking up. */
  lookUp: MeterSpan | null;
  /** The meter's newest reading, to add after the looked-up ones; null when not used. */
  known: LatestReading | null;
}

function planStored(meter: BatchMeter, lastMs: number | null, latest: LatestReadings): StoredPlan {
  // A meter's first landing (nothing should be stored then: looked at anyway, it is cheap).
  if (lastMs === null) return { lookUp: meter.span, known: null };
  const readings = meter.readings;
  // Readings are in time order: [0, tail) at or before lastMs, [tail, length) after it.
  let tail = readings.length;
  while (tail > 0 && (readings[tail - 1] as BatchReading).tsMs > lastMs) tail--;
  let known: LatestReading | null = null;
  if (tail < readings.length) {
    const remembered = latest.get(meter.meterId);
    const carries = registersOf(readings, tail, readings.length);
    if (
      remembered === undefined ||
      remembered.tsMs !== lastMs ||
      (carries.hasImport && remembered.importKwh === null) ||
      (carries.hasExport && remembered.exportKwh === null)
    ) {
      return { lookUp: meter.span, known: null };
    }
    known = remembered;
    if (tail === 0) return { lookUp: null, known };
  }
  const late = registersOf(readings, 0, tail);
  const lookUp: MeterSpan = {
    meterId: meter.meterId,
    loMs: (readings[0] as BatchReading).tsMs,
    hiMs: (readings[tail - 1] as BatchReading).tsMs,
    ...late,
  };
  return { lookUp, known };
}

function registersOf(readings: readonly BatchReading[], start: number, end: number) {
  let hasImport = false;
  let hasExport = false;
  for (let i = start; i < end; i++) {
    const values = (readings[i] as BatchReading).reading.values;
    hasImport ||= values.importEnergyKwh !== undefined;
    hasExport ||= values.exportEnergyKwh !== undefined;
  }
  return { hasImport, hasExport };
}

/**
 * Step 1: the gateway is online and seen now (the first message registers it), the batch's
 * meters are locked and read (their last reading's time and zone as they were), registered or
 * moved on, and their rollup locks are taken. One statement whose parts run in this order,
 * each gated on the one before (a CTE runs when first read): gateway row, meter rows (in meter
 * order, FOR UPDATE: the latest committed version, which the upsert then changes), advisory
 * locks (in meter order). landEvents and registerMeter take these locks in the same order, so
 * none of them can deadlock with a landing.
 * Returns, per meter that existed, its last_reading_at (epoch ms) and time zone before.
 */
async function upsertGatewayAndMeters(
  tx: SqlExecutor,
  batch: PreparedBatch,
  receivedAtIso: string,
): Promise<Map<string, { lastMs: number | null; timeZone: string | null }>> {
  const meterIds = batch.meters.map((m) => m.meterId);
  const { rows } = await tx.query<{ meter_id: string | null; last_ms: number | null; time_zone: string | null }>(
    `WITH gateway AS (
       INSERT INTO gateways (gateway_id, first_seen_at, last_seen_at, online) VALUES ($1, $2::timestamptz, $2::timestamptz, true)
       ON CONFLICT (gateway_id) DO UPDATE SET
         last_seen_at = GREATEST(gateways.last_seen_at, EXCLUDED.last_seen_at), online = true
       RETURNING gateway_id
     ), previous AS (
       SELECT m.meter_id, m.last_reading_at, m.time_zone FROM meters m
       WHERE m.meter_id = ANY($3::text[]) AND (SELECT count(*) FROM gateway) > 0
       ORDER BY m.meter_id FOR UPDATE
     ), upserted AS (
       INSERT INTO meters (meter_id, gateway_id, first_seen_at, last_reading_at)
       SELECT u.meter_id, $1, $2::timestamptz, u.ts
       FROM unnest($3::text[], $4::timestamptz[]) WITH ORDINALITY AS u(meter_id, ts, n)
       WHERE (SELECT count(*) FROM previous) >= 0
       ORDER BY u.n
       ON CONFLICT (meter_id) DO UPDATE SET
         last_reading_at = GREATEST(meters.last_reading_at, EXCLUDED.last_reading_at),
         gateway_id = COALESCE(meters.gateway_id, EXCLUDED.gateway_id),
         first_seen_at = COALESCE(meters.first_seen_at, EXCLUDED.first_seen_at)
       WHERE meters.last_reading_at IS NULL OR meters.last_reading_at < EXCLUDED.last_reading_at
         OR meters.gateway_id IS NULL OR meters.first_seen_at IS NULL
       RETURNING 1
     ), rollup_locks AS (
       SELECT count(${ROLLUP_LOCK("m")}) AS locked FROM (SELECT m FROM unnest($3::text[]) AS m ORDER BY m) s
       WHERE (SELECT count(*) FROM upserted) >= 0
     )
     SELECT p.meter_id, (extract(epoch FROM p.last_reading_at) * 1000)::float8 AS last_ms, p.time_zone
     FROM rollup_locks LEFT JOIN previous p ON true`,
    [batch.gatewayId, receivedAtIso, meterIds, batch.meters.map((m) => m.lastTs)],
  );
  const previous = new Map<string, { lastMs: number | null; timeZone: string | null }>();
  for (const row of rows) {
    if (row.meter_id === null) continue; // No meter existed before (LEFT JOIN's empty row).
    previous.set(row.meter_id, {
      lastMs: row.last_ms === null ? null : Number(row.last_ms),
      timeZone: row.time_zone,
    });
  }
  return previous;
}

/** The meter's batch readings whose time is not among the stored ones. */
function notStored(meter: BatchMeter, stored: readonly SeriesPoint[]): BatchReading[] {
  const { loMs, hiMs } = meter.span;
  let storedTimes: Set<number> | null = null;
  for (const point of stored) {
    if (point.tsMs < loMs || point.tsMs > hiMs) continue;
    storedTimes ??= new Set();
    storedTimes.add(point.tsMs);
  }
  if (storedTimes === null) return meter.readings;
  const times = storedTimes;
  return meter.readings.filter((item) => !times.has(item.tsMs));
}

function toSeriesPoint(item: BatchReading): SeriesPoint {
  const values = item.reading.values;
  return {
    tsMs: item.tsMs,
    importKwh: values.importEnergyKwh ?? null,
    exportKwh: values.exportEnergyKwh ?? null,
    unsynced: item.reading.clock !== "synced",
  };
}

const READING_COLUMNS = `meter_id, ts, gateway_id, seq, clock, received_at, "values", errors,
  import_energy_kwh, export_energy_kwh`;

/**
 * Writes readings known to be new; returns how many the database took. COPY where the driver
 * has it: the same rows as a plain INSERT, streamed and inserted in batches by the server
 * (partition routing included), without an ON CONFLICT check per row.
 */
async function insertReadings(
  tx: SqlExecutor,
  gatewayId: string,
  receivedAtIso: string,
  fresh: readonly BatchReading[],
): Promise<number> {
  if (tx.copyFrom !== undefined) {
    return tx.copyFrom(`COPY readings (${READING_COLUMNS}) FROM STDIN`, copyChunks(gatewayId, receivedAtIso, fresh));
  }
  // One statement over arrays (unnest) instead of a VALUES list: ten parameters whatever the
  // batch size, so PostgreSQL parses and plans it once and cheaply.
  const { rows, affectedRows } = await tx.query(
    `INSERT INTO readings (${READING_COLUMNS})
     SELECT u.meter_id, u.ts, $1, u.seq, u.clock, $2::timestamptz, u.v, u.e, u.import_kwh, u.export_kwh
     FROM unnest($3::text[], $4::timestamptz[], $5::bigint[], $6::text[], $7::jsonb[], $8::jsonb[],
       $9::float8[], $10::float8[]) AS u(meter_id, ts, seq, clock, v, e, import_kwh, export_kwh)
     ON CONFLICT (meter_id, ts) DO NOTHING`,
    [
      gatewayId,
      receivedAtIso,
      fresh.map(({ reading }) => reading.meterId),
      fresh.map(({ reading }) => reading.ts),
      fresh.map(({ reading }) => reading.seq),
      fresh.map(({ reading }) => reading.clock),
      fresh.map(({ reading }) => JSON.stringify(reading.values)),
      fresh.map(({ reading }) => (reading.errors === undefined ? null : JSON.stringify(reading.errors))),
      fresh.map(({ reading }) => reading.values.importEnergyKwh ?? null),
      fresh.map(({ reading }) => reading.values.exportEnergyKwh ?? null),
    ],
  );
  return affectedRows ?? rows.length;
}

/**
 * The rows in COPY text format (PostgreSQL "COPY", File Formats: Text Format): tab between
 * columns, newline after each row, `\N` for null, and a backslash doubled. Ids, clock and
 * times passed the wire schema (no tab, newline or backslash in them); JSON.stringify escapes
 * every control character, so backslashes are all its text can hold of those.
 */
export function copyText(
  gatewayId: string,
  receivedAtIso: string,
  fresh: readonly BatchReading[],
  start = 0,
  end = fresh.length,
): string {
  const lines: string[] = new Array(end - start);
  for (let i = start; i < end; i++) {
    const { reading } = fresh[i] as BatchReading;
    const values = reading.values;
    lines[i - start] =
      `${reading.meterId}\t${reading.ts}\t${gatewayId}\t${reading.seq}\t${reading.clock}\t${receivedAtIso}\t` +
      `${copyEscape(JSON.stringify(values))}\t${reading.errors === undefined ? "\\N" : copyEscape(JSON.stringify(reading.errors))}\t` +
      `${copyNumber(values.importEnergyKwh)}\t${copyNumber(values.exportEnergyKwh)}\n`;
  }
  return lines.join("");
}

/** Rows per COPY chunk: produced while the server inserts the chunk before. */
const COPY_ROWS_PER_CHUNK = 500;

/** copyText in chunks of COPY_ROWS_PER_CHUNK rows, each made when the COPY asks for it. */
function* copyChunks(gatewayId: string, receivedAtIso: string, fresh: readonly BatchReading[]): Generator<string> {
  for (let start = 0; start < fresh.length; start += COPY_ROWS_PER_CHUNK) {
    yield copyText(gatewayId, receivedAtIso, fresh, start, Math.min(fresh.length, start + COPY_ROWS_PER_CHUNK));
  }
}

function copyEscape(text: string): string {
  return text.includes("\\") ? text.replaceAll("\\", "\\\\") : text;
}

function copyNumber(value: number | undefined): string {
  return value === undefined ? "\\N" : String(value);
}

/** A gateway that publishes is online and seen now; the first message registers it. */
export async function touchGateway(tx: SqlExecutor, gatewayId: string, receivedAtIso: string): Promise<void> {
  await tx.query(
    `INSERT INTO gateways (gateway_id, first_seen_at, last_seen_at, online) VALUES ($1, $2::timestamptz, $2::timestamptz, true)
     ON CONFLICT (gateway_id) DO UPDATE SET
       last_seen_at = GREATEST(gateways.last_seen_at, EXCLUDED.last_seen_at), online = true`,
    [gatewayId, receivedAtIso],
  );
}

/** Code-unit order, the same for every locale (localeCompare is not). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
