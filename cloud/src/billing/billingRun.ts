import { createHash } from "node:crypto";
import { EdgemeterError } from "@edgemeter/shared";
import type { Logger } from "pino";
import type { SqlClient, SqlExecutor } from "../store/sqlClient.js";
import type { LineItem } from "./engine.js";
import { billMeter, type MeterBill, type TariffSegment } from "./meterBill.js";
import { billingPeriod, calendarFor, parsePeriod } from "./periods.js";
import { billRollupChunk } from "./rollupRun.js";
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
/** Meters per bulk (rollup) statement. */
const ROLLUP_CHUNK = 2_000;
/** How far beyond the period reads are fetched to interpolate the boundaries. */
const READ_MARGIN_MS = 48 * HOUR_MS;

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
  valid_from: Date | string;
  valid_to: Date | string | null;
  tariff_id: string;
  urdb: unknown;
  time_zone: string | null;
}

const ms = (value: Date | string | number): number => new Date(value).getTime();

/** JSON with sorted keys, so equal bills are equal bytes. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, inner) => {
    if (inner !== null && typeof inner === "object" && !Array.isArray(inner)) {
      return Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    if (typeof inner === "number" && !Number.isFinite(inner)) return null;
    return inner;
  });
}

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
    const { rows: assignments } = await tx.query<AssignmentRow>(
      `SELECT mt.meter_id, mt.valid_from, mt.valid_to, mt.tariff_id, t.urdb, m.time_zone
         FROM meter_tariffs mt JOIN tariffs t USING (tariff_id) LEFT JOIN meters m USING (meter_id)
        WHERE mt.valid_from < $2 AND (mt.valid_to IS NULL OR mt.valid_to > $1)
        ORDER BY mt.meter_id, mt.valid_from`,
      [windowStart.toISOString(), windowEnd.toISOString()],
    );
    const tariffs = new Map<string, UrdbTariff>();
    const byMeter = new Map<string, AssignmentRow[]>();
    for (const row of assignments) {
      if (!tariffs.has(row.tariff_id)) tariffs.set(row.tariff_id, parseUrdbTariff(row.urdb, `tariff ${row.tariff_id}`));
      const list = byMeter.get(row.meter_id) ?? [];
      list.push(row);
      byMeter.set(row.meter_id, list);
    }
    const meters = [...byMeter.keys()].sort();
    const segmentsOf = (meterId: string) => {
      const rows = byMeter.get(meterId) ?? [];
      const zone = rows[0]?.time_zone ?? options.defaultZone;
      const period = billingPeriod(options.period, zone);
      const segments: TariffSegment[] = rows
        .map((row) => ({
          tariffId: row.tariff_id,
          tariff: tariffs.get(row.tariff_id) as UrdbTariff,
          fromMs: ms(row.valid_from),
          toMs: row.valid_to === null ? Number.MAX_SAFE_INTEGER : ms(row.valid_to),
        }))
        .filter((segment) => segment.fromMs < period.endMs && segment.toMs > period.startMs);
      return { zone, period, segments };
    };
    let done = 0;
    // Bulk path first (DESIGN: billing never scans raw readings): meters under one tariff for the
    // whole period are billed from their hourly rollups, by zone and tariff, in chunks. Meters
    // whose rollups are flagged (gaps, unsynced reads, mismatches; see rollupRun.ts) come back
    // and join the meters with tariff changes or move-in/out on the detailed path below.
    const detailed: string[] = [];
    const groups = new Map<string, { zone: string; tariffId: string; meterIds: string[] }>();
    for (const meterId of meters) {
      const { zone, period, segments } = segmentsOf(meterId);
      const only = segments[0];
      if (segments.length === 1 && only !== undefined && only.fromMs <= period.startMs && only.toMs >= period.endMs) {
        const key = `${zone}\u0000${only.tariffId}`;
        const group = groups.get(key) ?? { zone, tariffId: only.tariffId, meterIds: [] };
        group.meterIds.push(meterId);
        groups.set(key, group);
      } else detailed.push(meterId);
    }
    let fromRollups = 0;
    for (const group of groups.values()) {
      const period = billingPeriod(options.period, group.zone);
      for (let index = 0; index < group.meterIds.length; index += ROLLUP_CHUNK) {
        const chunk = group.meterIds.slice(index, index + ROLLUP_CHUNK);
        const result = await billRollupChunk(tx, {
          meterIds: chunk,
          tariff: tariffs.get(group.tariffId) as UrdbTariff,
          tariffId: group.tariffId,
          period,
          runId: summary.runId,
          now: options.now(),
          dryRun: options.dryRun,
          withDaily: true,
        });
        summary.meters += result.written;
        summary.totalMinor += result.totalMinor;
        if (!options.dryRun) {
          summary.billsCreated += result.created;
          summary.billsUpdated += result.updated;
          summary.billsUnchanged += result.unchanged;
        }
        fromRollups += result.written;
        for (const item of result.fallback) detailed.push(item.meterId);
        if (result.fallback.length > 0) {
          logger.debug({ fallback: result.fallback.slice(0, 20) }, "meters billed from raw readings");
        }
        done += result.written;
        options.onProgress?.(done, meters.length);
      }
    }
    detailed.sort();
    logger.info({ fromRollups, fromReadings: detailed.length }, "billing sources");
    for (const meterId of detailed) {
      const { zone, period, segments } = segmentsOf(meterId);
      if (segments.length === 0) {
        done++;
        continue;
      }
      summary.meters++;
      const content = await billOneMeter(tx, meterId, period, segments, zone);
      if (content.estimated) summary.estimated++;
      summary.totalMinor += content.totalMinor;
      if (!options.dryRun) await storeBill(tx, content, summary, options.now());
      done++;
      options.onProgress?.(done, meters.length);
    }
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
    logger.info({ ...summary }, "bill run finished");
    return summary;
  });
}

async function billOneMeter(
  tx: SqlExecutor,
  meterId: string,
  period: ReturnType<typeof billingPeriod>,
  segments: TariffSegment[],
  zone: string,
): Promise<StoredBillContent> {
  const from = new Date(period.startMs - READ_MARGIN_MS).toISOString();
  const to = new Date(period.endMs + READ_MARGIN_MS).toISOString();
  // The reads around the period, plus the nearest synced read on either side beyond the margin
  // (a meter read rarely still has its boundaries interpolated rather than extrapolated).
  const { rows: readRows } = await tx.query<{ ts: Date | string; imp: number; exp: number | null; clock: string }>(
    `(SELECT ts, import_energy_kwh AS imp, export_energy_kwh AS exp, clock FROM readings
       WHERE meter_id = $1 AND ts >= $2 AND ts <= $3 AND import_energy_kwh IS NOT NULL)
     UNION
     (SELECT ts, import_energy_kwh, export_energy_kwh, clock FROM readings
       WHERE meter_id = $1 AND ts < $2 AND import_energy_kwh IS NOT NULL AND clock = 'synced' ORDER BY ts DESC LIMIT 1)
     UNION
     (SELECT ts, import_energy_kwh, export_energy_kwh, clock FROM readings
       WHERE meter_id = $1 AND ts > $3 AND import_energy_kwh IS NOT NULL AND clock = 'synced' ORDER BY ts LIMIT 1)
     ORDER BY ts`,
    [meterId, from, to],
  );
  const reads: RegisterRead[] = readRows.map((row) => ({
    tsMs: ms(row.ts),
    importKwh: Number(row.imp),
    exportKwh: row.exp === null ? undefined : Number(row.exp),
    clock: row.clock === "synced" ? "synced" : "unsynced",
  }));
  const { rows: exchangeRows } = await tx.query<{
    exchanged_at: Date | string;
    old_final_import_kwh: number;
    new_start_import_kwh: number;
    old_final_export_kwh: number;
    new_start_export_kwh: number;
  }>("SELECT * FROM meter_exchanges WHERE meter_id = $1 AND exchanged_at >= $2 AND exchanged_at <= $3", [
    meterId,
    from,
    to,
  ]);
  const exchanges: MeterExchange[] = exchangeRows.map((row) => ({
    atMs: ms(row.exchanged_at),
    oldFinalImportKwh: Number(row.old_final_import_kwh),
    newStartImportKwh: Number(row.new_start_import_kwh),
    oldFinalExportKwh: Number(row.old_final_export_kwh),
    newStartExportKwh: Number(row.new_start_export_kwh),
  }));
  // History for a period without reads: the meter's average kWh per hour on its last bill.
  const { rows: history } = await tx.query<{
    import_kwh: number;
    content: { opening?: { atMs: number }; closing?: { atMs: number } };
  }>(
    `SELECT import_kwh, content FROM bills WHERE meter_id = $1 AND period < $2 AND status <> 'cancelled'
      ORDER BY period DESC LIMIT 1`,
    [meterId, period.period],
  );
  const last = history[0];
  const lastHours =
    last === undefined ? 0 : ((last.content.closing?.atMs ?? 0) - (last.content.opening?.atMs ?? 0)) / HOUR_MS;
  const fallbackKwhPerHour = last !== undefined && lastHours > 0 ? Number(last.import_kwh) / lastHours : 0;

  const bill = billMeter({
    meterId,
    period,
    calendar: calendarFor(zone),
    segments,
    reads,
    vee: { exchanges, fallbackKwhPerHour },
  });
  const { rows: pending } = await tx.query<{
    id: string | number;
    amount_minor: string | number;
    import_kwh: number;
    period: string;
    reason: string;
  }>(
    `SELECT a.id, a.amount_minor, a.import_kwh, b.period, a.reason FROM bill_adjustments a JOIN bills b ON b.id = a.original_bill_id
      WHERE a.meter_id = $1 AND b.period < $2 AND (a.applied_in_period IS NULL OR a.applied_in_period = $2)
      ORDER BY a.id`,
    [meterId, period.period],
  );
  const lines: BillLine[] = [...bill.lines];
  let adjustmentMinor = 0;
  for (const adjustment of pending) {
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

async function storeBill(tx: SqlExecutor, content: StoredBillContent, summary: RunSummary, now: Date): Promise<void> {
  const json = stableJson(content);
  const sha = createHash("sha256").update(json).digest("hex");
  const { rows } = await tx.query<{
    id: string | number;
    status: string;
    content_sha256: string;
    content: StoredBillContent;
  }>(
    "SELECT id, status, content_sha256, content FROM bills WHERE meter_id = $1 AND period = $2 AND status <> 'cancelled'",
    [content.meterId, content.period],
  );
  const existing = rows[0];
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
    const { rows: versions } = await tx.query<{ v: number | null }>(
      "SELECT max(version) AS v FROM bills WHERE meter_id = $1 AND period = $2",
      [content.meterId, content.period],
    );
    await tx.query(
      `INSERT INTO bills (meter_id, period, version, status, run_id, currency, time_zone, import_kwh, total_minor, estimated,
         content, content_sha256, created_at, updated_at)
       VALUES ($1, $2, $3, 'draft', $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $12)`,
      [
        content.meterId,
        content.period,
        Number(versions[0]?.v ?? 0) + 1,
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
  const amountMinor = content.baseTotalMinor - existing.content.baseTotalMinor;
  const kwh = content.importKwh - existing.content.importKwh;
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
