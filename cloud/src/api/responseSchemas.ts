import { MEASUREMENT_NAMES, StatusPayload } from "@edgemeter/shared";
import { z } from "zod";

/**
 * zod shapes of the API's answers, for the OpenAPI document only (routeDocs.ts): the handlers
 * return the store's rows as they are. Kept beside the row types they mirror (store.ts,
 * meterData.ts, billing/billingQueries.ts); api.test.ts checks answers against them.
 */

const Iso = z.string().describe("ISO 8601 time (UTC)");
const IsoOrNull = Iso.nullable();

export const MeterRowSchema = z.object({
  meterId: z.string(),
  gatewayId: z.string().nullable(),
  customerId: z.string().nullable(),
  tariffId: z.string().nullable(),
  latitude: z.number().nullable(),
  longitude: z.number().nullable(),
  timeZone: z.string().nullable(),
  firstSeenAt: IsoOrNull,
  lastReadingAt: IsoOrNull,
});

export const GatewayRowSchema = z.object({
  gatewayId: z.string(),
  online: z.boolean(),
  firstSeenAt: Iso,
  lastSeenAt: Iso,
  status: StatusPayload.nullable(),
});

export const ReadingRowSchema = z.object({
  meterId: z.string(),
  gatewayId: z.string(),
  seq: z.number().int(),
  ts: Iso,
  clock: z.enum(["synced", "unsynced"]),
  values: z.partialRecord(z.enum(MEASUREMENT_NAMES), z.number()),
  receivedAt: Iso,
});

export const RejectedMessageRowSchema = z.object({
  id: z.number().int(),
  receivedAt: Iso,
  topic: z.string(),
  reason: z.string(),
  payloadText: z.string(),
});

export const DailyConsumptionRowSchema = z.object({
  day: z.string().describe("local day YYYY-MM-DD"),
  timeZone: z.string(),
  importKwh: z.number(),
  exportKwh: z.number(),
});

export const HourlyConsumptionRowSchema = z.object({
  hourStart: Iso,
  importKwh: z.number(),
  exportKwh: z.number(),
});

export const EventRowSchema = z.object({
  gatewayId: z.string(),
  eventId: z.string(),
  state: z.enum(["start", "end", "instant"]),
  meterId: z.string(),
  kind: z.string(),
  phase: z.string().nullable(),
  value: z.number().nullable(),
  threshold: z.number().nullable(),
  ts: Iso,
  durationMs: z.number().nullable(),
  clock: z.enum(["synced", "unsynced"]),
});

export const OutageGroupsSchema = z.object({
  from: Iso,
  to: Iso,
  gateways: z.array(
    z.object({
      gatewayId: z.string().nullable(),
      outages: z.array(
        z.object({
          meterId: z.string(),
          cause: z.enum(["interruption", "gateway_offline", "silence"]),
          startedAt: Iso,
          endedAt: IsoOrNull,
          latitude: z.number().nullable(),
          longitude: z.number().nullable(),
        }),
      ),
    }),
  ),
});

/** `{items, limit, offset}` of a paginated list. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), limit: z.number().int(), offset: z.number().int() });
}

export const BillRunViewSchema = z.object({
  id: z.number().int(),
  period: z.string().describe("YYYY-MM"),
  trigger: z.string(),
  dryRun: z.boolean(),
  status: z.string(),
  startedAt: Iso,
  finishedAt: IsoOrNull,
  meters: z.number().int(),
  billsCreated: z.number().int(),
  billsUpdated: z.number().int(),
  billsUnchanged: z.number().int(),
  adjustments: z.number().int(),
  estimated: z.number().int(),
});

export const BillViewSchema = z.object({
  id: z.number().int(),
  meterId: z.string(),
  period: z.string().describe("YYYY-MM"),
  version: z.number().int(),
  status: z.enum(["draft", "finalised", "cancelled"]),
  runId: z.number().int().nullable(),
  currency: z.string(),
  timeZone: z.string(),
  importKwh: z.number(),
  totalMinor: z.number().int().describe("total in minor units (cents)"),
  total: z.string().describe("total formatted in major units"),
  estimated: z.boolean(),
  createdAt: Iso,
  finalisedAt: IsoOrNull,
  cancelledAt: IsoOrNull,
});

/** A bill with its stored content (line items, reads, VEE flags): documented as an open object. */
export const BillWithContentSchema = BillViewSchema.extend({ content: z.record(z.string(), z.unknown()) });

/** pandas DataFrame.to_json() column dictionaries: {column: {rowIndex: value}}. */
const Column = <T extends z.ZodType>(value: T) => z.record(z.string(), value);

export const SeedConsumptionSchema = z
  .array(z.tuple([z.string(), z.string(), z.number()]))
  .describe('[[meter_id, "YYYYMMDD", kWh], …]');

export const SeedAnomalySchema = z.object({
  meter_id: Column(z.string()),
  ds: Column(z.string()),
  consumption: Column(z.number()),
  yhat_lower: Column(z.number()),
  yhat_upper: Column(z.number()),
  anomaly: Column(z.number().int()),
  importance: Column(z.number()),
});

export const SeedForecastSchema = z.object({
  consumption: z.record(z.string(), z.number()).describe("epoch ms of the day's UTC midnight → kWh"),
});

export const SeedOutageSchema = z.object({
  Items: z.array(
    z.object({
      meter_id: z.string(),
      reading_date_time: z.string().describe("YYYY-MM-DD HH:MM:SS.sss (UTC)"),
      date_str: z.string().describe("YYYYMMDD"),
      lat: z.number().nullable(),
      long: z.number().nullable(),
    }),
  ),
});
