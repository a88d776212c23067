import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { MeterDataStore } from "../../store/meterData.js";
import type { ApiDeps } from "../apiDeps.js";
import { addDays, anomalyBand, BASELINE_DAYS, type DailyPoint, seasonalNaiveForecast } from "../meterAnalytics.js";
import { parseRequestPart } from "../requestInput.js";
import { SeedAnomalySchema, SeedConsumptionSchema, SeedForecastSchema, SeedOutageSchema } from "../responseSchemas.js";
import { routeDoc } from "../routeDocs.js";

/**
 * The routes of the AWS "Utility Meter Data Analytics Platform" quick start
 * (github.com/aws-quickstart/quickstart-aws-utility-meter-data-analytics-platform), same paths,
 * parameters and response shapes, so a backend written against it works unchanged. Unlike it:
 * parameters are bound (no SQL built from them) and a missing or malformed one is a 400
 * naming it. Consumption is the import register (kWh), rounded to the Wh.
 */

const METER_ID = z.string().min(1, "must not be empty").max(128, "must be at most 128 characters");
const DAY = z
  .string({ error: "is required, as YYYY-MM-DD" })
  .regex(/^\d{4}-\d{2}-\d{2}$/, "must be a date YYYY-MM-DD")
  .refine(
    (text) =>
      !Number.isNaN(Date.parse(`${text}T00:00:00Z`)) && new Date(`${text}T00:00:00Z`).toISOString().startsWith(text),
    "is not a calendar date",
  );

/** Athena TIMESTAMP literal as the seed platform takes it ("2010-01-03 09:00:01", UTC), or ISO 8601 with a zone. */
const DATE_TIME = z
  .string({ error: "is required, as 'YYYY-MM-DD HH:MM:SS' (UTC)" })
  .regex(
    /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?$/,
    "must be 'YYYY-MM-DD HH:MM:SS' (UTC) or ISO 8601",
  )
  .transform((text, context) => {
    const iso = text.replace(" ", "T");
    const date = new Date(/(Z|[+-]\d{2}:\d{2})$/.test(iso) ? iso : `${iso}Z`);
    if (Number.isNaN(date.getTime())) {
      context.addIssue({ code: "custom", message: "is not a valid time" });
      return z.NEVER;
    }
    return date;
  });

const ConsumptionParams = z.object({
  aggregation: z.enum(["daily", "weekly", "monthly"], { error: "must be daily, weekly or monthly" }),
  year: z
    .string()
    .regex(/^\d{4}$/, "must be a four-digit year")
    .transform(Number)
    .refine((y) => y >= 1970, "must be 1970 or later"),
  meter_id: METER_ID,
});

const MeterParams = z.object({ meter_id: METER_ID });

const RangeQuery = z
  .object({ data_start: DAY, data_end: DAY })
  .refine((q) => q.data_start < q.data_end, { message: "must be before data_end", path: ["data_start"] });

const AnomalyQuery = z
  .object({
    data_start: DAY,
    data_end: DAY,
    outlier_only: z.enum(["0", "1"], { error: "must be 0 or 1" }).default("0"),
  })
  .refine((q) => q.data_start < q.data_end, { message: "must be before data_end", path: ["data_start"] });

const OutageQuery = z
  .object({ start_date_time: DATE_TIME, end_date_time: DATE_TIME })
  .refine((q) => q.start_date_time <= q.end_date_time, {
    message: "must not be after end_date_time",
    path: ["start_date_time"],
  });

/** Wh resolution: rollups are sums of interpolated shares and carry float noise below that. */
function kwh3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function yyyymmdd(day: string): string {
  return day.replaceAll("-", "");
}

/** Monday of the ISO 8601 week of `day`, clipped to the year (the first week starts on 1 January). */
function weekKey(day: string): string {
  const weekdayFromMonday = (new Date(`${day}T00:00:00Z`).getUTCDay() + 6) % 7;
  const monday = addDays(day, -weekdayFromMonday);
  const yearStart = `${day.slice(0, 4)}-01-01`;
  return monday < yearStart ? yearStart : monday;
}

async function dailyPoints(
  meterData: MeterDataStore,
  meterId: string,
  from: string,
  to: string,
): Promise<DailyPoint[]> {
  const rows = await meterData.dailyConsumption(meterId, from, to);
  return rows.map((row) => ({ day: row.day, kwh: row.importKwh }));
}

function columns<T>(rows: readonly T[], pick: (row: T) => unknown): Record<string, unknown> {
  return Object.fromEntries(rows.map((row, index) => [String(index), pick(row)]));
}

/** "2026-03-29 22:00:00.000" (UTC), as the seed platform's reading_date_time. */
function athenaTime(iso: string): string {
  return iso.replace("T", " ").replace("Z", "");
}

export function registerSeedRoutes(app: FastifyInstance, meterData: MeterDataStore, _deps: ApiDeps): void {
  // [[meter_id, "YYYYMMDD", kwh], …] per local day, ISO week (keyed by its Monday) or month (its 1st).
  app.get(
    "/consumption/:aggregation/:year/:meter_id",
    routeDoc({
      tags: ["seed"],
      summary: 'Consumption per day, ISO week or month of a year: [[meter_id, "YYYYMMDD", kWh], …]',
      params: ConsumptionParams,
      notes: { aggregation: "daily | weekly | monthly", year: "four-digit year", meter_id: "meter id" },
      response: SeedConsumptionSchema,
    }),
    async (request) => {
      const params = parseRequestPart(ConsumptionParams, request.params, "params");
      const points = await dailyPoints(meterData, params.meter_id, `${params.year}-01-01`, `${params.year + 1}-01-01`);
      const keyOf =
        params.aggregation === "daily"
          ? (day: string) => day
          : params.aggregation === "weekly"
            ? weekKey
            : (day: string) => `${day.slice(0, 7)}-01`;
      const totals = new Map<string, number>();
      for (const point of points) totals.set(keyOf(point.day), (totals.get(keyOf(point.day)) ?? 0) + point.kwh);
      return [...totals.entries()].map(([day, total]) => [params.meter_id, yyyymmdd(day), kwh3(total)]);
    },
  );

  // Column dictionaries as pandas' DataFrame.to_json() renders them: {column: {rowIndex: value}}.
  app.get(
    "/anomaly/:meter_id",
    routeDoc({
      tags: ["seed"],
      summary: "Daily consumption against a robust band per weekday (pandas column dictionaries)",
      params: MeterParams,
      query: AnomalyQuery,
      notes: {
        meter_id: "meter id",
        data_start: "YYYY-MM-DD (inclusive)",
        data_end: "YYYY-MM-DD (exclusive)",
        outlier_only: "0 or 1",
      },
      response: SeedAnomalySchema,
    }),
    async (request) => {
      const { meter_id } = parseRequestPart(MeterParams, request.params, "params");
      const query = parseRequestPart(AnomalyQuery, request.query, "querystring");
      const history = await dailyPoints(meterData, meter_id, addDays(query.data_start, -BASELINE_DAYS), query.data_end);
      const evaluated = history.filter((point) => point.day >= query.data_start);
      let rows = anomalyBand(history, evaluated);
      if (query.outlier_only === "1") rows = rows.filter((row) => row.anomaly !== 0);
      return {
        meter_id: columns(rows, () => meter_id),
        ds: columns(rows, (row) => row.day),
        consumption: columns(rows, (row) => kwh3(row.consumption)),
        yhat_lower: columns(rows, (row) => kwh3(row.yhatLower)),
        yhat_upper: columns(rows, (row) => kwh3(row.yhatUpper)),
        anomaly: columns(rows, (row) => row.anomaly),
        importance: columns(rows, (row) => Math.round(row.importance * 10_000) / 10_000),
      };
    },
  );

  // {consumption: {epoch ms of the day's (UTC) midnight: kWh}}.
  app.get(
    "/forecast/:meter_id",
    routeDoc({
      tags: ["seed"],
      summary: "Seasonal-naive daily forecast: {consumption: {epoch_ms: kWh}}",
      params: MeterParams,
      query: RangeQuery,
      notes: { meter_id: "meter id", data_start: "YYYY-MM-DD (inclusive)", data_end: "YYYY-MM-DD (exclusive)" },
      response: SeedForecastSchema,
    }),
    async (request) => {
      const { meter_id } = parseRequestPart(MeterParams, request.params, "params");
      const query = parseRequestPart(RangeQuery, request.query, "querystring");
      const history = await dailyPoints(
        meterData,
        meter_id,
        addDays(query.data_start, -BASELINE_DAYS),
        query.data_start,
      );
      const forecast = seasonalNaiveForecast(history, query.data_start, query.data_end);
      return {
        consumption: Object.fromEntries(
          forecast.map((point) => [String(Date.parse(`${point.day}T00:00:00Z`)), kwh3(point.kwh)]),
        ),
      };
    },
  );

  // Outages that started in [start_date_time, end_date_time].
  app.get(
    "/outage",
    routeDoc({
      tags: ["seed"],
      summary: "Outages started in a time range: {Items: [{meter_id, reading_date_time, date_str, lat, long}]}",
      query: OutageQuery,
      notes: { start_date_time: "YYYY-MM-DD HH:MM:SS (UTC)", end_date_time: "YYYY-MM-DD HH:MM:SS (UTC)" },
      response: SeedOutageSchema,
    }),
    async (request) => {
      const query = parseRequestPart(OutageQuery, request.query, "querystring");
      const outages = await meterData.outagesStarted(query.start_date_time, query.end_date_time);
      return {
        Items: outages.map((outage) => ({
          meter_id: outage.meterId,
          reading_date_time: athenaTime(outage.startedAt),
          date_str: yyyymmdd(outage.startedAt.slice(0, 10)),
          lat: outage.latitude,
          long: outage.longitude,
        })),
      };
    },
  );
}
