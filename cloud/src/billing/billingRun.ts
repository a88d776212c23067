import { createHash } from "node:crypto";
import { EdgemeterError } from "@edgemeter/shared";
import type { Logger } from "pino";
import type { SqlClient, SqlExecutor } from "../store/sqlClient.js";
import { stableJson } from "./canonicalJson.js";
import type { LineItem } from "./engine.js";
import { billMeter, type MeterBill, type TariffSegment } from "./meterBill.js";
import { billingPeriod, calendarFor, parsePeriod } from "./periods.js";
import { type BillingTimings, billFromRollups, ROLLUP_CHUNK, type RollupGroup } from "./rollupRun.js";
import { parseUrdbTariff, type UrdbTariff } from "./tariff.js";
import type { MeterExchange, RegisterRead } from "./vee.js";

/**
 * Bill runs against the store (PostgreSQL dialect: PGlite or a server).
 *
 * - One run bills every meter with a tariff assignment overlapping the period, in ONE
 *   transaction that first takes `pg_try_advisory_xact_lock(BILLING_LOCK_KEY)`: when another
 *   cloud instance holds it, this one does nothing (`skipped: "locked"`). A scheduled run also
 *   skips a period the schedule already billed.
 * - Idempotent: a bill's content is deterministic JSON of its inputs; an unchanged draft is left
 *   alone (same id, same bytes), a changed draft is updated.
 * - A finalised bill never changes (a database trigger enforces it). When late or corrected
 *   data change what it would be, the difference becomes a `bill_adjustments` row that the
 *   meter's next period's bill carries as an "adjustment" line.
 * - Cancel (and so rebill on the next run) is an explicit, audited admin action.
 */
export const BILLING_LOCK_KEY = 7_264_351_007;

const HOUR_MS = 3_600_000;
/** How far beyond the period reads are fetched to interpolate the boundaries. */
const READ_MARGIN_MS = 48 * HOUR_MS;

/** Reader connections of a bulk run on a PostgreSQL server (the machine's cores are the limit). */
export const BULK_READERS = 2;

export type BillLine = Omit<LineItem, "kind"> & { kind: LineItem["kind"] | "adjustment"; tariffId?: string };

/** A bill as stored in `bills.content`. */
export interface StoredBillContent extends Omit<MeterBill, "lines"> {
  lines: BillLine[];
  /** The total before adjustments from earlier periods (what late data is compared with). */
  baseTotalMinor: number;
  adjustmentMinor: number;
}

export interface RunOptions {
  period: string;
  dryRun: boolean;
  trigger: "cli" | "schedule" | "api";
  /** The utility's zone, for meters without their own. */
  defaultZone: string;
  now: () => Date;
  logger: Logger;
  onProgress?: (done: number, total: number) => void;
  /** Filled with the milliseconds each phase took (the benchmark prints them). */
  timings?: BillingTimings;
  /** Meters per bulk statement (default ROLLUP_CHUNK). */
  chunkSize?: number;
  /**
   * Extra connections that read the bulk chunks in parallel on the run's snapshot (PostgreSQL
   * server only; default BULK_READERS). 0: the run's transaction reads and writes in turn.
   */
  readers?: number;
}

export interface RunSummary {
  runId: number | null;
  period: string;
  dryRun: boolean;
  skipped?: "locked" | "alreadyRun";
  meters: number;
  billsCreated: number;
  billsUpdated: number;
  billsUnchanged: number;
  adjustments: number;
  estimated: number;
  totalMinor: number;
}

interface AssignmentRow {
  meter_id: string;
  /** Epoch ms. */
  valid_from: number;
  valid_to: number | null;
  tariff_id: string;
  time_zone: string | null;
}

/** JSON with sorted keys, so equal bills are equal bytes (canonicalJson.ts). */
export { stableJson };

export async function runBilling(sql: SqlClient, options: RunOptions): Promise<RunSummary> {
  parsePeriod(options.period);
  calendarFor(options.defaultZone);
  const logger = options.logger.child({ component: "billing", period: options.period });
  const summary: RunSummary = {
    runId: null,
    period: options.period,
    dryRun: options.dryRun,
    meters: 0,
    billsCreated: 0,
    billsUpdated: 0,
    billsUnchanged: 0,
    adjustments: 0,
    estimated: 0,
    totalMinor: 0,
  };
  const lap = (phase: string, fromMs: number) => {
    const now = performance.now();
    if (options.timings !== undefined) options.timings[phase] = (options.timings[phase] ?? 0) + (now - fromMs);
    return now;
  };
  let t = performance.now();
  return sql.transaction(async (tx) => {
    const { rows: lock } = await tx.query<{ locked: boolean }>("SELECT pg_try_advisory_xact_lock($1) AS locked", [
      BILLING_LOCK_KEY,
    ]);
    if (lock[0]?.locked !== true) {
      logger.info("another instance holds the billing lock: not running");
      return { ...summary, skipped: "locked" };
    }
    if (options.trigger === "schedule") {
      const { rows } = await tx.query(
        "SELECT 1 FROM bill_runs WHERE period = $1 AND trigger = 'schedule' AND status = 'done' AND NOT dry_run",
        [options.period],
      );
      if (rows.length > 0) return { ...summary, skipped: "alreadyRun" };
    }
    if (sql.kind === "postgres") {
      // For this transaction only: the bulk statements hash ~1.5 M rollup rows per chunk (in
      // memory, not spilled), and JIT compiling them costs more than it saves.
      await tx.query("SELECT set_config('work_mem', '256MB', true), set_config('jit', 'off', true)");
    }
    const startedAt = options.now();
    if (!options.dryRun) {
      const { rows } = await tx.query<{ id: string | number }>(
        `INSERT INTO bill_runs (period, trigger, dry_run, started_at, status) VALUES ($1, $2, false, $3, 'running') RETURNING id`,
        [options.period, options.trigger, startedAt.toISOString()],
      );
      summary.runId = Number(rows[0]?.id);
    }
    const { year, month } = parsePeriod(options.period);
    // Generous UTC window (zones span UTC−12…+14); each meter is clipped to its own zone below.
    const windowStart = new Date(Date.UTC(year, month - 1, 1) - 15 * HOUR_MS);
    const windowEnd = new Date(Date.UTC(year, month, 1) + 15 * HOUR_MS);
    // Timestamps as epoch ms (no Date parsing per row); each tariff's URDB record fetched once.
    const { rows: assignments } = await tx.query<AssignmentRow>(
      `SELECT mt.meter_id, trunc(extract(epoch FROM mt.valid_from) * 1000)::float8 AS valid_from,
              trunc(extract(epoch FROM mt.valid_to) * 1000)::float8 AS valid_to, mt.tariff_id, m.time_zone
         FROM meter_tariffs mt LEFT JOIN meters m USING (meter_id)
        WHERE mt.valid_from < $2 AND (mt.valid_to IS NULL OR mt.valid_to > $1)
        ORDER BY mt.meter_id, mt.valid_from`,
      [windowStart.toISOString(), windowEnd.toISOString()],
    );
    const tariffs = new Map<string, UrdbTariff>();
    const tariffIds = new Set<string>();
    const byMeter = new Map<string, AssignmentRow[]>();
    for (const row of assignments) {
      const list = byMeter.get(row.meter_id);
      if (list === undefined) byMeter.set(row.meter_id, [row]);
      else list.push(row);
      tariffIds.add(row.tariff_id);
    }
    if (tariffIds.size > 0) {
      const { rows: records } = await tx.query<{ tariff_id: string; urdb: unknown }>(
        "SELECT tariff_id, urdb FROM tariffs WHERE tariff_id = ANY($1::text[])",
        [[...tariffIds]],
      );
      for (const record of records) {
        tariffs.set(record.tariff_id, parseUrdbTariff(record.urdb, `tariff ${record.tariff_id}`));
      }
    }
    // In the database's order (the statement's ORDER BY), which is also how the chunks are cut.
    const meters = [...byMeter.keys()];
    const periods = new Map<string, ReturnType<typeof billingPeriod>>();
    const segmentsOf = (meterId: string) => {
      const rows = byMeter.get(meterId) ?? [];
      const zone = rows[0]?.time_zone ?? options.defaultZone;
      let period = periods.get(zone);
      if (period === undefined) {
        period = billingPeriod(options.period, zone);
        periods.set(zone, period);
      }
      const segments: TariffSegment[] = rows
        .map((row) => ({
          tariffId: row.tariff_id,
          tariff: tariffs.get(row.tariff_id) as UrdbTariff,
          fromMs: Number(row.valid_from),
          toMs: row.valid_to === null ? Number.MAX_SAFE_INTEGER : Number(row.valid_to),
        }))
        .filter((segment) => segment.fromMs < period.endMs && segment.toMs > period.startMs);
      return { zone, period, segments };
    };
    let done = 0;
    // Bulk path first (DESIGN: billing never scans raw readings): meters under one tariff for the
    // whole period are billed from their hourly rollups, by zone and tariff, streamed in chunks
    // (rollupRun.ts). Meters whose rollups are flagged (gaps, unsynced reads, mismatches) come
    // back and join the meters with tariff changes or move-in/out on the detailed path below.
    const detailed: string[] = [];
    const groups = new Map<string, RollupGroup & { meterIds: string[] }>();
    for (const meterId of meters) {
      const { zone, period, segments } = segmentsOf(meterId);
      const only = segments[0];
      if (segments.length === 1 && only !== undefined && only.fromMs <= period.startMs && only.toMs >= period.endMs) {
        const key = `${zone}\u0000${only.tariffId}`;
        let group = groups.get(key);
        if (group === undefined) {
          group = { period, tariffId: only.tariffId, tariff: only.tariff, meterIds: [] };
          groups.set(key, group);
        }
        group.meterIds.push(meterId);
      } else detailed.push(meterId);
    }
    t = lap("setup", t);
    const chunkSize = Math.max(1, options.chunkSize ?? ROLLUP_CHUNK);
    const bulkInput = {
      groups: [...groups.values()],
      period: options.period,
      runId: summary.runId,
      now: options.now(),
      dryRun: options.dryRun,
      chunkSize,
      ...(options.timings === undefined ? {} : { timings: options.timings }),
      onChunk: (billed: number) => {
        done += billed;
        options.onProgress?.(done, meters.length);
      },
    };
    const bulkMeters = bulkInput.groups.reduce((sum, group) => sum + group.meterIds.length, 0);
    const readerCount = sql.kind === "postgres" ? Math.max(0, Math.floor(options.readers ?? BULK_READERS)) : 0;
    const bulk =
      readerCount > 0 && bulkMeters > chunkSize
        ? await withSnapshotReaders(sql, tx, readerCount, logger, (readers) =>
            billFromRollups(tx, { ...bulkInput, readers }),
          )
        : await billFromRollups(tx, bulkInput);
    t = performance.now();
    summary.meters += bulk.written;
    summary.totalMinor += bulk.totalMinor;
    if (!options.dryRun) {
      summary.billsCreated += bulk.created;
      summary.billsUpdated += bulk.updated;
      summary.billsUnchanged += bulk.unchanged;
    }
    const fromRollups = bulk.written;
    for (const item of bulk.fallback) detailed.push(item.meterId);
    if (bulk.fallback.length > 0) {
      logger.debug({ fallback: bulk.fallback.slice(0, 20) }, "meters billed from raw readings");
    }
    detailed.sort();
    logger.info({ fromRollups, fromReadings: detailed.length }, "billing sources");
    // Each meter's raw reads are its own statement (thousands of rows); everything else the
    // detailed path needs is looked up for a batch of meters at once.
    for (let index = 0; index < detailed.length; index += DETAILED_BATCH) {
      const batch = detailed.slice(index, index + DETAILED_BATCH);
      const state = await loadMeterState(tx, batch, options.period, (meterId) => segmentsOf(meterId).period);
      for (const meterId of batch) {
        const { zone, period, segments } = segmentsOf(meterId);
        if (segments.length === 0) {
          done++;
          continue;
        }
        summary.meters++;
        const content = await billOneMeter(tx, meterId, period, segments, zone, state);
        if (content.estimated) summary.estimated++;
        summary.totalMinor += content.totalMinor;
        if (!options.dryRun) await storeBill(tx, content, summary, options.now(), state.bills.get(meterId));
        done++;
        options.onProgress?.(done, meters.length);
      }
    }
    t = lap("detailed", t);
    options.onProgress?.(meters.length, meters.length);
    if (summary.runId !== null) {
      await tx.query(
        `UPDATE bill_runs SET status = 'done', finished_at = $2, meters = $3, bills_created = $4, bills_updated = $5,
           bills_unchanged = $6, adjustments = $7, estimated = $8 WHERE id = $1`,
        [
          summary.runId,
          options.now().toISOString(),
          summary.meters,
          summary.billsCreated,
          summary.billsUpdated,
          summary.billsUnchanged,
          summary.adjustments,
          summary.estimated,
        ],
      );
      await tx.query(
        "INSERT INTO bill_audit (at, actor, action, period, detail) VALUES ($1, $2, 'run', $3, $4::jsonb)",
        [options.now().toISOString(), options.trigger, options.period, JSON.stringify(summary)],
      );
    }
    lap("finish", t);
    logger.info({ ...summary }, "bill run finished");
    return summary;
  });
}

/**
 * Runs `body` with up to `count` more connections, each in a read-only REPEATABLE READ
 * transaction on the snapshot of `tx` (pg_export_snapshot): they see exactly the data the run's
 * transaction saw when they started, and nothing it writes. A connection the pool cannot give
 * is done without (the bulk path then has fewer readers, or reads on the run's transaction).
 */
async function withSnapshotReaders<T>(
  sql: SqlClient,
  tx: SqlExecutor,
  count: number,
  logger: Logger,
  body: (readers: SqlExecutor[]) => Promise<T>,
): Promise<T> {
  const { rows } = await tx.query<{ id: string }>("SELECT pg_export_snapshot() AS id");
  const snapshot = rows[0]?.id ?? "";
  if (!/^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9]+)?$/.test(snapshot)) {
    throw new EdgemeterError("storage.query", `unexpected snapshot id "${snapshot}"`);
  }
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const sessions: Promise<unknown>[] = [];
  const ready: Promise<SqlExecutor | null>[] = [];
  for (let index = 0; index < count; index++) {
    ready.push(
      new Promise<SqlExecutor | null>((resolve) => {
        sessions.push(
          sql
            .transaction(async (reader) => {
              await reader.exec(
                `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '${snapshot}'`,
              );
              await reader.query("SELECT set_config('work_mem', '256MB', true), set_config('jit', 'off', true)");
              resolve(reader);
              await released;
            })
            .catch((error: unknown) => {
              resolve(null);
              logger.warn({ err: error }, "a bulk reader connection failed");
            }),
        );
      }),
    );
  }
  try {
    const readers = (await Promise.all(ready)).filter((reader): reader is SqlExecutor => reader !== null);
    return await body(readers);
  } finally {
    release();
    await Promise.allSettled(sessions);
  }
}

/** Meters per batch of the detailed path's look-ups. */
const DETAILED_BATCH = 500;

interface PendingAdjustment {
  id: string | number;
  amount_minor: string | number;
  import_kwh: number;
  period: string;
  reason: string;
}

/** A meter's live bill of the period, as storeBill compares with it. */
interface ExistingBill {
  id: string | number;
  status: string;
  content_sha256: string;
  /** Only for a finalised bill (the base of an adjustment). */
  content: StoredBillContent | null;
}

/** What the detailed path needs besides each meter's reads, for a batch of meters. */
interface MeterState {
  exchanges: Map<string, MeterExchange[]>;
  /** The meter's average kWh per hour on its last bill (estimate for a period without reads). */
  fallbackKwhPerHour: Map<string, number>;
  pending: Map<string, PendingAdjustment[]>;
  bills: Map<string, { live?: ExistingBill; maxVersion: number }>;
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}

async function loadMeterState(
  tx: SqlExecutor,
  meterIds: readonly string[],
  periodName: string,
  periodOf: (meterId: string) => ReturnType<typeof billingPeriod>,
): Promise<MeterState> {
  const state: MeterState = {
    exchanges: new Map(),
    fallbackKwhPerHour: new Map(),
    pending: new Map(),
    bills: new Map(),
  };
  if (meterIds.length === 0) return state;
  // One window for the batch (zones differ by hours); each meter keeps the exchanges of its own.
  let fromMs = Number.POSITIVE_INFINITY;
  let toMs = Number.NEGATIVE_INFINITY;
  for (const meterId of meterIds) {
    const period = periodOf(meterId);
    fromMs = Math.min(fromMs, period.startMs - READ_MARGIN_MS);
    toMs = Math.max(toMs, period.endMs + READ_MARGIN_MS);
  }
  const { rows: exchangeRows } = await tx.query<{
    meter_id: string;
    at_ms: number;
    old_final_import_kwh: number;
    new_start_import_kwh: number;
    old_final_export_kwh: number;
    new_start_export_kwh: number;
  }>(
    `SELECT meter_id, trunc(extract(epoch FROM exchanged_at) * 1000)::float8 AS at_ms, old_final_import_kwh,
            new_start_import_kwh, old_final_export_kwh, new_start_export_kwh
       FROM meter_exchanges WHERE meter_id = ANY($1::text[]) AND exchanged_at >= $2 AND exchanged_at <= $3
      ORDER BY meter_id, exchanged_at`,
    [meterIds, new Date(fromMs).toISOString(), new Date(toMs).toISOString()],
  );
  for (const row of exchangeRows) {
    const period = periodOf(row.meter_id);
    const atMs = Number(row.at_ms);
    if (atMs < period.startMs - READ_MARGIN_MS || atMs > period.endMs + READ_MARGIN_MS) continue;
    pushTo(state.exchanges, row.meter_id, {
      atMs,
      oldFinalImportKwh: Number(row.old_final_import_kwh),
      newStartImportKwh: Number(row.new_start_import_kwh),
      oldFinalExportKwh: Number(row.old_final_export_kwh),
      newStartExportKwh: Number(row.new_start_export_kwh),
    });
  }
  // History for a period without reads: the meter's last bill before this period.
  const { rows: history } = await tx.query<{
    meter_id: string;
    import_kwh: number;
    opening_ms: number | null;
    closing_ms: number | null;
  }>(
    `SELECT DISTINCT ON (meter_id) meter_id, import_kwh, (content->'opening'->>'atMs')::float8 AS opening_ms,
            (content->'closing'->>'atMs')::float8 AS closing_ms
       FROM bills WHERE meter_id = ANY($1::text[]) AND period < $2 AND status <> 'cancelled'
      ORDER BY meter_id, period DESC`,
    [meterIds, periodName],
  );
  for (const row of history) {
    const hours = (Number(row.closing_ms ?? 0) - Number(row.opening_ms ?? 0)) / HOUR_MS;
    state.fallbackKwhPerHour.set(row.meter_id, hours > 0 ? Number(row.import_kwh) / hours : 0);
  }
  const { rows: pending } = await tx.query<PendingAdjustment & { meter_id: string }>(
    `SELECT a.meter_id, a.id, a.amount_minor, a.import_kwh, b.period, a.reason FROM bill_adjustments a JOIN bills b ON b.id = a.original_bill_id
      WHERE a.meter_id = ANY($1::text[]) AND b.period < $2 AND (a.applied_in_period IS NULL OR a.applied_in_period = $2)
      ORDER BY a.id`,
    [meterIds, periodName],
  );
  for (const row of pending) pushTo(state.pending, row.meter_id, row);
  const { rows: bills } = await tx.query<ExistingBill & { meter_id: string; version: number }>(
    `SELECT meter_id, id, status, version, content_sha256, CASE WHEN status = 'finalised' THEN content END AS content
       FROM bills WHERE meter_id = ANY($1::text[]) AND period = $2`,
    [meterIds, periodName],
  );
  for (const row of bills) {
    const entry = state.bills.get(row.meter_id) ?? { maxVersion: 0 };
    entry.maxVersion = Math.max(entry.maxVersion, Number(row.version));
    if (row.status !== "cancelled") {
      entry.live = { id: row.id, status: row.status, content_sha256: row.content_sha256, content: row.content };
    }
    state.bills.set(row.meter_id, entry);
  }
  return state;
}

async function billOneMeter(
  tx: SqlExecutor,
  meterId: string,
  period: ReturnType<typeof billingPeriod>,
  segments: TariffSegment[],
  zone: string,
  state: MeterState,
): Promise<StoredBillContent> {
  const from = new Date(period.startMs - READ_MARGIN_MS).toISOString();
  const to = new Date(period.endMs + READ_MARGIN_MS).toISOString();
  // The reads around the period, plus the nearest synced read on either side beyond the margin
  // (a meter read rarely still has its boundaries interpolated rather than extrapolated). The
  // three parts are disjoint. Timestamps as epoch ms truncated to the millisecond, as a Date.
  const epochMs = "date_part('epoch', date_trunc('milliseconds', ts)) * 1000";
  const { rows: readRows } = await tx.query<{ ms: number; imp: number; exp: number | null; clock: string }>(
    `(SELECT ${epochMs} AS ms, import_energy_kwh AS imp, export_energy_kwh AS exp, clock FROM readings
       WHERE meter_id = $1 AND ts >= $2 AND ts <= $3 AND import_energy_kwh IS NOT NULL)
     UNION ALL
     (SELECT ${epochMs}, import_energy_kwh, export_energy_kwh, clock FROM readings
       WHERE meter_id = $1 AND ts < $2 AND import_energy_kwh IS NOT NULL AND clock = 'synced' ORDER BY ts DESC LIMIT 1)
     UNION ALL
     (SELECT ${epochMs}, import_energy_kwh, export_energy_kwh, clock FROM readings
       WHERE meter_id = $1 AND ts > $3 AND import_energy_kwh IS NOT NULL AND clock = 'synced' ORDER BY ts LIMIT 1)
     ORDER BY ms`,
    [meterId, from, to],
  );
  const reads: RegisterRead[] = readRows.map((row) => ({
    tsMs: Math.round(Number(row.ms)),
    importKwh: Number(row.imp),
    exportKwh: row.exp === null ? undefined : Number(row.exp),
    clock: row.clock === "synced" ? "synced" : "unsynced",
  }));
  const bill = billMeter({
    meterId,
    period,
    calendar: calendarFor(zone),
    segments,
    reads,
    vee: {
      exchanges: state.exchanges.get(meterId) ?? [],
      fallbackKwhPerHour: state.fallbackKwhPerHour.get(meterId) ?? 0,
    },
  });
  const lines: BillLine[] = [...bill.lines];
  let adjustmentMinor = 0;
  for (const adjustment of state.pending.get(meterId) ?? []) {
    const amountMinor = Number(adjustment.amount_minor);
    adjustmentMinor += amountMinor;
    lines.push({
      kind: "adjustment",
      description: `adjustment for ${adjustment.period}: ${adjustment.reason}`,
      quantity: Number(adjustment.import_kwh),
      unit: "kWh",
      rate: 0,
      exactAmount: amountMinor / 100,
      amountMinor,
      adjustmentId: Number(adjustment.id),
    } as BillLine);
  }
  return {
    ...bill,
    lines,
    baseTotalMinor: bill.totalMinor,
    adjustmentMinor,
    totalMinor: bill.totalMinor + adjustmentMinor,
  };
}

async function storeBill(
  tx: SqlExecutor,
  content: StoredBillContent,
  summary: RunSummary,
  now: Date,
  before: { live?: ExistingBill; maxVersion: number } | undefined,
): Promise<void> {
  const json = stableJson(content);
  const sha = createHash("sha256").update(json).digest("hex");
  const existing = before?.live;
  const adjustmentIds = content.lines
    .map((line) => (line as { adjustmentId?: number }).adjustmentId)
    .filter((id): id is number => id !== undefined);
  const markApplied = async () => {
    if (adjustmentIds.length > 0) {
      await tx.query("UPDATE bill_adjustments SET applied_in_period = $1 WHERE id = ANY($2::bigint[])", [
        content.period,
        adjustmentIds,
      ]);
    }
  };
  if (existing === undefined) {
    await tx.query(
      `INSERT INTO bills (meter_id, period, version, status, run_id, currency, time_zone, import_kwh, total_minor, estimated,
         content, content_sha256, created_at, updated_at)
       VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $12)`,
      [
        content.meterId,
        content.period,
        (before?.maxVersion ?? 0) + 1,
        summary.runId,
        content.currency,
        content.zone,
        content.importKwh,
        content.totalMinor,
        content.estimated,
        json,
        sha,
        now.toISOString(),
      ],
    );
    await markApplied();
    summary.billsCreated++;
    return;
  }
  if (existing.content_sha256 === sha) {
    summary.billsUnchanged++;
    return;
  }
  if (existing.status === "draft") {
    await tx.query(
      `UPDATE bills SET run_id = $2, import_kwh = $3, total_minor = $4, estimated = $5, content = $6::jsonb,
         content_sha256 = $7, updated_at = $8, currency = $9 WHERE id = $1`,
      [
        existing.id,
        summary.runId,
        content.importKwh,
        content.totalMinor,
        content.estimated,
        json,
        sha,
        now.toISOString(),
        content.currency,
      ],
    );
    await markApplied();
    summary.billsUpdated++;
    return;
  }
  // Finalised: never rewritten. The difference (base totals, without earlier adjustments) goes to the next bill.
  const original = existing.content as StoredBillContent;
  const amountMinor = content.baseTotalMinor - original.baseTotalMinor;
  const kwh = content.importKwh - original.importKwh;
  if (amountMinor === 0 && Math.abs(kwh) < 1e-9) {
    summary.billsUnchanged++;
    return;
  }
  const { rows: inserted } = await tx.query(
    `INSERT INTO bill_adjustments (meter_id, original_bill_id, amount_minor, import_kwh, reason, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (original_bill_id) DO UPDATE SET amount_minor = EXCLUDED.amount_minor, import_kwh = EXCLUDED.import_kwh
       WHERE bill_adjustments.applied_in_period IS NULL
         AND (bill_adjustments.amount_minor, bill_adjustments.import_kwh) IS DISTINCT FROM (EXCLUDED.amount_minor, EXCLUDED.import_kwh)
     RETURNING id`,
    [
      content.meterId,
      existing.id,
      amountMinor,
      kwh,
      "late or corrected readings after finalisation",
      now.toISOString(),
    ],
  );
  if (inserted.length > 0) summary.adjustments++;
  else summary.billsUnchanged++;
}

/** Finalises every draft of a period; returns how many. Audited. */
export async function finaliseBills(sql: SqlClient, period: string, actor: string, now: Date): Promise<number> {
  parsePeriod(period);
  return sql.transaction(async (tx) => {
    const { rows } = await tx.query<{ id: string | number }>(
      "UPDATE bills SET status = 'finalised', finalised_at = $2, updated_at = $2 WHERE period = $1 AND status = 'draft' RETURNING id",
      [period, now.toISOString()],
    );
    for (const row of rows) {
      await tx.query(
        "INSERT INTO bill_audit (at, actor, action, bill_id, period) VALUES ($1, $2, 'finalise', $3, $4)",
        [now.toISOString(), actor, row.id, period],
      );
    }
    return rows.length;
  });
}

/**
 * Cancels a bill (the explicit admin correction of a sent bill): it stays stored as cancelled,
 * the next run of its period makes a new version. Audited with actor and reason.
 * @throws EdgemeterError storage.notFound, config.invalid (already cancelled, or no reason).
 */
export async function cancelBill(
  sql: SqlClient,
  billId: number,
  actor: string,
  reason: string,
  now: Date,
): Promise<void> {
  if (reason.trim() === "") throw new EdgemeterError("config.invalid", "cancel needs a reason (it is audited)");
  await sql.transaction(async (tx) => {
    const { rows } = await tx.query<{ status: string; period: string }>(
      "SELECT status, period FROM bills WHERE id = $1",
      [billId],
    );
    const bill = rows[0];
    if (bill === undefined) throw new EdgemeterError("storage.notFound", `bill ${billId} not found`);
    if (bill.status === "cancelled") throw new EdgemeterError("config.invalid", `bill ${billId} is already cancelled`);
    await tx.query("DELETE FROM bill_adjustments WHERE original_bill_id = $1 AND applied_in_period IS NULL", [billId]);
    await tx.query("UPDATE bills SET status = 'cancelled', cancelled_at = $2, updated_at = $2 WHERE id = $1", [
      billId,
      now.toISOString(),
    ]);
    await tx.query(
      "INSERT INTO bill_audit (at, actor, action, bill_id, period, detail) VALUES ($1, $2, 'cancel', $3, $4, $5::jsonb)",
      [now.toISOString(), actor, billId, bill.period, JSON.stringify({ reason })],
    );
  });
}

/** Stores a URDB tariff under an id (replacing a tariff of that id). */
export async function putTariff(
  sql: SqlExecutor,
  tariffId: string,
  record: unknown,
  where: string,
): Promise<UrdbTariff> {
  const tariff = parseUrdbTariff(record, where);
  await sql.query(
    `INSERT INTO tariffs (tariff_id, label, currency, urdb) VALUES ($1, $2, $3, $4::jsonb)
     ON CONFLICT (tariff_id) DO UPDATE SET label = EXCLUDED.label, currency = EXCLUDED.currency, urdb = EXCLUDED.urdb`,
    [tariffId, tariff.label ?? tariff.name ?? null, tariff.currency, JSON.stringify(record)],
  );
  return tariff;
}

/** Assigns a tariff to a meter from `validFrom` (to `validTo`, exclusive, or open-ended). */
export async function assignTariff(
  sql: SqlExecutor,
  meterId: string,
  tariffId: string,
  validFrom: Date,
  validTo: Date | null = null,
  customerId: string | null = null,
): Promise<void> {
  await sql.query(
    `INSERT INTO meter_tariffs (meter_id, valid_from, valid_to, tariff_id, customer_id) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (meter_id, valid_from) DO UPDATE SET valid_to = EXCLUDED.valid_to, tariff_id = EXCLUDED.tariff_id,
       customer_id = EXCLUDED.customer_id`,
    [meterId, validFrom.toISOString(), validTo?.toISOString() ?? null, tariffId, customerId],
  );
}
