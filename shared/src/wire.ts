import { z } from "zod";
import { GatewayId, MeterId } from "./ids.js";
import { MEASUREMENT_NAMES } from "./measurements.js";
import { WIRE_VERSION } from "./wireConstants.js";

export { MAX_PAYLOAD_BYTES, WIRE_VERSION } from "./wireConstants.js";

const IsoTime = z.iso.datetime({
  offset: false,
  precision: 3,
  message: "must be an ISO 8601 UTC time like 2026-01-31T12:00:00.000Z",
});

export const MeasurementNameSchema = z.enum(MEASUREMENT_NAMES);

export const MeasurementValues = z.partialRecord(MeasurementNameSchema, z.number().finite());

export const ReadingError = z.strictObject({
  code: z.string().min(1).max(64),
  message: z.string().max(500),
});

export const Reading = z.strictObject({
  meterId: MeterId,
  /** Rises monotonically per gateway and survives restarts: with gatewayId, the reading's identity. */
  seq: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** When the meter was read (UTC). */
  ts: IsoTime,
  /** "unsynced": taken before the gateway's clock was synchronised; never decides a billing boundary. */
  clock: z.enum(["synced", "unsynced"]),
  values: MeasurementValues,
  /** Registers that could not be read or decoded in this poll. */
  errors: z.array(ReadingError).max(64).optional(),
});
export type Reading = z.infer<typeof Reading>;

export const TelemetryPayload = z.strictObject({
  v: z.literal(WIRE_VERSION),
  gatewayId: GatewayId,
  batchId: z.string().min(1).max(64),
  sentAt: IsoTime,
  readings: z.array(Reading).min(1).max(10_000),
});
export type TelemetryPayload = z.infer<typeof TelemetryPayload>;

export const EVENT_KINDS = [
  "voltageSag",
  "voltageSwell",
  "voltageInterruption",
  "frequencyDeviation",
  "meterOffline",
  "meterBack",
  "energyRegisterBackwards",
] as const;
export const EventKind = z.enum(EVENT_KINDS);
export type EventKind = z.infer<typeof EventKind>;

export const MeterEvent = z.strictObject({
  /** Unique per gateway; the start and end of one fault share it. */
  eventId: z.string().min(1).max(64),
  meterId: MeterId,
  kind: EventKind,
  /** "start" and "end" bracket a fault; "instant" is a one-off (register went backwards). */
  state: z.enum(["start", "end", "instant"]),
  phase: z.enum(["L1", "L2", "L3"]).nullable(),
  /** Extreme value seen during the fault (min for a sag, max for a swell), in the measurement's unit. */
  value: z.number().finite().nullable(),
  threshold: z.number().finite().nullable(),
  ts: IsoTime,
  /** On "end": how long the fault lasted. */
  durationMs: z.number().int().nonnegative().nullable(),
  clock: z.enum(["synced", "unsynced"]),
});
export type MeterEvent = z.infer<typeof MeterEvent>;

export const EventsPayload = z.strictObject({
  v: z.literal(WIRE_VERSION),
  gatewayId: GatewayId,
  batchId: z.string().min(1).max(64),
  sentAt: IsoTime,
  events: z.array(MeterEvent).min(1).max(1_000),
});
export type EventsPayload = z.infer<typeof EventsPayload>;

export const StatusPayload = z.strictObject({
  v: z.literal(WIRE_VERSION),
  gatewayId: GatewayId,
  state: z.enum(["online", "offline"]),
  /** Absent in the last will, which the broker sends long after it was written. */
  ts: IsoTime.optional(),
  version: z.string().max(64).optional(),
  bufferedReadings: z.number().int().nonnegative().optional(),
  oldestUnsentTs: IsoTime.nullable().optional(),
  certificateExpiresAt: IsoTime.nullable().optional(),
  clock: z.enum(["synced", "unsynced"]).optional(),
  /**
   * Disk cap (DESIGN "Storage"), since the gateway's outbox was created: interval readings
   * deleted unsent to make room (energy registers kept at 15 minutes), and readings deleted
   * unsent once thinning could not. Optional: gateways before issue 4's counts omit them.
   */
  thinnedReadings: z.number().int().nonnegative().optional(),
  droppedReadings: z.number().int().nonnegative().optional(),
});
export type StatusPayload = z.infer<typeof StatusPayload>;
