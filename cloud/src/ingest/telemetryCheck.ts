import { isMeasurementName, isValidId, type TelemetryPayload, WIRE_VERSION } from "@edgemeter/shared";

/**
 * A hand-written test of a parsed telemetry payload against the wire contract
 * (shared/src/wire.ts TelemetryPayload), for the ingest's hot path: a 500-reading batch is
 * checked several times faster than by the zod schema, and the payload is used as it is
 * instead of being copied. It only ever says yes to what the schema accepts unchanged;
 * on anything else it says no and the caller runs the schema, which stays the authority and
 * gives the per-field error message (CONVENTIONS §6). telemetryCheck.test.ts holds the two
 * against each other on valid, mutated and random payloads.
 */
export function isPlainValidTelemetry(json: unknown): json is TelemetryPayload {
  if (!isPlainRecord(json)) return false;
  let keys = 0;
  for (const key in json) {
    if (!TOP_KEYS.has(key)) return false;
    keys++;
  }
  if (keys !== TOP_KEYS.size) return false;
  const { v, gatewayId, batchId, sentAt, readings } = json;
  if (v !== WIRE_VERSION) return false;
  if (typeof gatewayId !== "string" || !isValidId(gatewayId)) return false;
  if (typeof batchId !== "string" || batchId.length < 1 || batchId.length > 64) return false;
  if (!isIsoTimeMs(sentAt)) return false;
  if (!Array.isArray(readings) || readings.length < 1 || readings.length > 10_000) return false;
  for (const reading of readings) if (!isPlainValidReading(reading)) return false;
  return true;
}

const TOP_KEYS = new Set(["v", "gatewayId", "batchId", "sentAt", "readings"]);
const READING_KEYS = new Set(["meterId", "seq", "ts", "clock", "values", "errors"]);

function isPlainValidReading(reading: unknown): boolean {
  if (!isPlainRecord(reading)) return false;
  let keys = 0;
  for (const key in reading) {
    if (!READING_KEYS.has(key)) return false;
    keys++;
  }
  const { meterId, seq, ts, clock, values, errors } = reading;
  // Five required keys, plus errors when present.
  if (keys !== (errors === undefined ? 5 : 6)) return false;
  if (typeof meterId !== "string" || !isValidId(meterId)) return false;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) return false;
  if (!isIsoTimeMs(ts)) return false;
  if (clock !== "synced" && clock !== "unsynced") return false;
  if (!isPlainRecord(values)) return false;
  for (const name in values) {
    if (!isMeasurementName(name)) return false;
    const value = values[name];
    if (typeof value !== "number" || !Number.isFinite(value)) return false;
  }
  if (errors !== undefined) {
    if (!Array.isArray(errors) || errors.length > 64) return false;
    for (const error of errors) {
      if (!isPlainRecord(error)) return false;
      let errorKeys = 0;
      for (const key in error) {
        if (key !== "code" && key !== "message") return false;
        errorKeys++;
      }
      const { code, message } = error;
      if (errorKeys !== 2) return false;
      if (typeof code !== "string" || code.length < 1 || code.length > 64) return false;
      if (typeof message !== "string" || message.length > 500) return false;
    }
  }
  return true;
}

/** What JSON.parse makes of `{…}`: an object that is neither null nor an array. */
function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * `YYYY-MM-DDTHH:mm:ss.sssZ` naming a real instant of the proleptic Gregorian calendar (hours
 * 00-23, no leap second): what `z.iso.datetime({ offset: false, precision: 3 })` accepts.
 */
export function isIsoTimeMs(value: unknown): boolean {
  if (typeof value !== "string" || value.length !== 24) return false;
  if (
    value.charCodeAt(4) !== DASH ||
    value.charCodeAt(7) !== DASH ||
    value.charCodeAt(10) !== LETTER_T ||
    value.charCodeAt(13) !== COLON ||
    value.charCodeAt(16) !== COLON ||
    value.charCodeAt(19) !== DOT ||
    value.charCodeAt(23) !== LETTER_Z
  ) {
    return false;
  }
  const year = digits(value, 0, 4);
  const month = digits(value, 5, 2);
  const day = digits(value, 8, 2);
  const hour = digits(value, 11, 2);
  const minute = digits(value, 14, 2);
  const second = digits(value, 17, 2);
  const millis = digits(value, 20, 3);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23) return false;
  if (minute < 0 || minute > 59 || second < 0 || second > 59 || millis < 0) return false;
  return day <= daysInMonth(year, month);
}

const DASH = 0x2d;
const COLON = 0x3a;
const DOT = 0x2e;
const LETTER_T = 0x54;
const LETTER_Z = 0x5a;

/** The number written by `length` ASCII digits from `start`, or -1 when one is not a digit. */
function digits(text: string, start: number, length: number): number {
  let out = 0;
  for (let i = start; i < start + length; i++) {
    const digit = text.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return -1;
    out = out * 10 + digit;
  }
  return out;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}
