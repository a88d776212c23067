import type { SqlExecutor } from "../store/sqlClient.js";
import type { StoredBillContent } from "./billingRun.js";
import { formatMinorUnits } from "./money.js";

/** Read side of billing: runs and bills for the API, the CSV export and the invoice. */

export interface BillRunView {
  id: number;
  period: string;
  trigger: string;
  dryRun: boolean;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  meters: number;
  billsCreated: number;
  billsUpdated: number;
  billsUnchanged: number;
  adjustments: number;
  estimated: number;
}

export interface BillView {
  id: number;
  meterId: string;
  period: string;
  version: number;
  status: "draft" | "finalised" | "cancelled";
  runId: number | null;
  currency: string;
  timeZone: string;
  importKwh: number;
  totalMinor: number;
  total: string;
  estimated: boolean;
  createdAt: string;
  finalisedAt: string | null;
  cancelledAt: string | null;
}

const iso = (value: unknown): string | null =>
  value === null || value === undefined ? null : new Date(value as string).toISOString();

function runView(row: Record<string, unknown>): BillRunView {
  return {
    id: Number(row.id),
    period: String(row.period),
    trigger: String(row.trigger),
    dryRun: Boolean(row.dry_run),
    status: String(row.status),
    startedAt: iso(row.started_at) ?? "",
    finishedAt: iso(row.finished_at),
    meters: Number(row.meters),
    billsCreated: Number(row.bills_created),
    billsUpdated: Number(row.bills_updated),
    billsUnchanged: Number(row.bills_unchanged),
    adjustments: Number(row.adjustments),
    estimated: Number(row.estimated),
  };
}

function billView(row: Record<string, unknown>): BillView {
  const totalMinor = Number(row.total_minor);
  return {
    id: Number(row.id),
    meterId: String(row.meter_id),
    period: String(row.period),
    version: Number(row.version),
    status: row.status as BillView["status"],
    runId: row.run_id === null ? null : Number(row.run_id),
    currency: String(row.currency),
    timeZone: String(row.time_zone),
    importKwh: Number(row.import_kwh),
    totalMinor,
    total: formatMinorUnits(totalMinor),
    estimated: Boolean(row.estimated),
    createdAt: iso(row.created_at) ?? "",
    finalisedAt: iso(row.finalised_at),
    cancelledAt: iso(row.cancelled_at),
  };
}

const BILL_COLUMNS = `id, meter_id, period, version, status, run_id, currency, time_zone, import_kwh, total_minor, estimated,
  created_at, finalised_at, cancelled_at`;

export async function listBillRuns(sql: SqlExecutor, page: { limit: number; offset: number }): Promise<BillRunView[]> {
  const { rows } = await sql.query("SELECT * FROM bill_runs ORDER BY id DESC LIMIT $1 OFFSET $2", [
    page.limit,
    page.offset,
  ]);
  return rows.map(runView);
}

export async function getBillRun(sql: SqlExecutor, id: number): Promise<BillRunView | null> {
  const { rows } = await sql.query("SELECT * FROM bill_runs WHERE id = $1", [id]);
  return rows[0] === undefined ? null : runView(rows[0]);
}

export async function listBills(
  sql: SqlExecutor,
  filter: { period?: string | undefined; meterId?: string | undefined },
  page: { limit: number; offset: number },
): Promise<BillView[]> {
  const { rows } = await sql.query(
    `SELECT ${BILL_COLUMNS} FROM bills WHERE ($1::text IS NULL OR period = $1) AND ($2::text IS NULL OR meter_id = $2)
      ORDER BY period, meter_id, version LIMIT $3 OFFSET $4`,
    [filter.period ?? null, filter.meterId ?? null, page.limit, page.offset],
  );
  return rows.map(billView);
}

export async function getBill(
  sql: SqlExecutor,
  id: number,
): Promise<(BillView & { content: StoredBillContent }) | null> {
  const { rows } = await sql.query(`SELECT ${BILL_COLUMNS}, content FROM bills WHERE id = $1`, [id]);
  const row = rows[0];
  return row === undefined ? null : { ...billView(row), content: row.content as StoredBillContent };
}

const CSV_HEADER = [
  "bill_id",
  "meter_id",
  "period",
  "version",
  "status",
  "currency",
  "opening_kwh",
  "closing_kwh",
  "import_kwh",
  "energy",
  "demand",
  "fixed",
  "minimum",
  "export_credit",
  "taxes",
  "adjustment",
  "total",
  "estimated",
  "vee_flags",
];

/** RFC 4180: quote a field that holds a comma, quote or line break; double inner quotes. */
function csvField(value: string | number | boolean): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** Every live bill of a run's period (the run's output as the utility's billing system imports it). */
export async function billRunCsv(sql: SqlExecutor, runId: number): Promise<string | null> {
  const run = await getBillRun(sql, runId);
  if (run === null) return null;
  const { rows } = await sql.query<{ id: string; version: number; status: string; content: StoredBillContent }>(
    "SELECT id, version, status, content FROM bills WHERE period = $1 AND status <> 'cancelled' ORDER BY meter_id",
    [run.period],
  );
  const lines = [CSV_HEADER.join(",")];
  for (const row of rows) {
    const c = row.content;
    const money = (minor: number) => formatMinorUnits(minor);
    lines.push(
      [
        row.id,
        c.meterId,
        c.period,
        row.version,
        row.status,
        c.currency,
        Number.isFinite(c.opening.registerKwh) ? c.opening.registerKwh.toFixed(3) : "",
        Number.isFinite(c.closing.registerKwh) ? c.closing.registerKwh.toFixed(3) : "",
        c.importKwh.toFixed(3),
        money(c.energyMinor),
        money(c.demandMinor),
        money(c.fixedMinor),
        money(c.minimumMinor),
        money(c.exportCreditMinor),
        money(c.taxesMinor),
        money(c.adjustmentMinor),
        money(c.totalMinor),
        c.estimated,
        [...new Set(c.flags.map((flag) => flag.code))].join(" "),
      ]
        .map(csvField)
        .join(","),
    );
  }
  return `${lines.join("\r\n")}\r\n`;
}
