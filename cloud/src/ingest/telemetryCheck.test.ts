import { TelemetryPayload } from "@edgemeter/shared";
import { describe, expect, it } from "vitest";
import { isIsoTimeMs, isPlainValidTelemetry } from "./telemetryCheck.js";

/** The contract of the fast check: yes only where the schema says yes and returns the payload unchanged. */
function expectAgreement(json: unknown, label: string): boolean {
  const fast = isPlainValidTelemetry(json);
  const schema = TelemetryPayload.safeParse(json);
  if (fast) {
    expect(schema.success, `${label}: fast check accepted what the schema refuses`).toBe(true);
    expect(schema.data, `${label}: the schema would have changed it`).toEqual(json);
  }
  return fast;
}

function valid(): Record<string, unknown> {
  return {
    v: 1,
    gatewayId: "gw-1",
    batchId: "b-1",
    sentAt: "2026-11-22T10:00:05.000Z",
    readings: [
      {
        meterId: "m-1",
        seq: 0,
        ts: "2026-11-22T10:00:00.000Z",
        clock: "synced",
        values: { importEnergyKwh: 1234.5, voltageL1V: 230.1 },
      },
      {
        meterId: "m.2_x",
        seq: Number.MAX_SAFE_INTEGER,
        ts: "2024-02-29T23:59:59.999Z",
        clock: "unsynced",
        values: {},
        errors: [{ code: "modbus.timeout", message: "" }],
      },
    ],
  };
}

type Mutation = [string, (payload: Record<string, unknown> & { readings: Record<string, unknown>[] }) => void];

const reading0 = (p: { readings: Record<string, unknown>[] }) => p.readings[0] as Record<string, unknown>;

/** Each breaks the contract in one place: the fast check must refuse it (and so must the schema). */
const INVALID: Mutation[] = [
  ["v 2", (p) => (p.v = 2)],
  ["v string", (p) => (p.v = "1")],
  ["extra top key", (p) => (p.extra = 1)],
  ["missing batchId", (p) => delete p.batchId],
  ["empty batchId", (p) => (p.batchId = "")],
  ["long batchId", (p) => (p.batchId = "x".repeat(65))],
  ["bad gatewayId", (p) => (p.gatewayId = "gw/1")],
  ["gatewayId starting with a dot", (p) => (p.gatewayId = ".gw")],
  ["sentAt with offset", (p) => (p.sentAt = "2026-11-22T10:00:05.000+01:00")],
  ["sentAt without millis", (p) => (p.sentAt = "2026-11-22T10:00:05Z")],
  ["no readings", (p) => (p.readings = [])],
  ["readings not an array", (p) => (p.readings = { 0: reading0(p) } as unknown as Record<string, unknown>[])],
  ["reading null", (p) => (p.readings[0] = null as unknown as Record<string, unknown>)],
  ["reading extra key", (p) => (reading0(p).gatewayId = "gw-1")],
  ["reading missing values", (p) => delete reading0(p).values],
  ["seq negative", (p) => (reading0(p).seq = -1)],
  ["seq fraction", (p) => (reading0(p).seq = 1.5)],
  ["seq beyond safe", (p) => (reading0(p).seq = 2 ** 60)],
  ["seq string", (p) => (reading0(p).seq = "1")],
  ["clock", (p) => (reading0(p).clock = "ntp")],
  ["unknown measurement", (p) => (reading0(p).values = { importEnergyWh: 1 })],
  ["value string", (p) => (reading0(p).values = { voltageL1V: "230" })],
  ["value null", (p) => (reading0(p).values = { voltageL1V: null })],
  ["values array", (p) => (reading0(p).values = [])],
  ["errors not array", (p) => (reading0(p).errors = {})],
  ["errors too many", (p) => (reading0(p).errors = Array.from({ length: 65 }, () => ({ code: "c", message: "m" })))],
  ["error empty code", (p) => (reading0(p).errors = [{ code: "", message: "m" }])],
  ["error extra key", (p) => (reading0(p).errors = [{ code: "c", message: "m", at: 1 }])],
  ["error long message", (p) => (reading0(p).errors = [{ code: "c", message: "m".repeat(501) }])],
  ["ts 24:00", (p) => (reading0(p).ts = "2026-11-22T24:00:00.000Z")],
  ["ts Feb 29 of a common year", (p) => (reading0(p).ts = "2026-02-29T00:00:00.000Z")],
  ["ts Feb 29 1900", (p) => (reading0(p).ts = "1900-02-29T00:00:00.000Z")],
  ["ts leap second", (p) => (reading0(p).ts = "2016-12-31T23:59:60.000Z")],
  ["ts lower-case z", (p) => (reading0(p).ts = "2026-11-22T10:00:00.000z")],
  ["ts space", (p) => (reading0(p).ts = "2026-11-22 10:00:00.000Z")],
  ["ts five-digit year", (p) => (reading0(p).ts = "+02026-11-22T10:00:00.000Z")],
  ["ts number", (p) => (reading0(p).ts = Date.parse("2026-11-22T10:00:00.000Z"))],
];

describe("isPlainValidTelemetry (the ingest's fast check) against the wire schema", () => {
  it("accepts a valid payload, which the schema accepts unchanged", () => {
    expect(expectAgreement(valid(), "valid")).toBe(true);
    expect(expectAgreement(JSON.parse(JSON.stringify(valid())), "valid, through JSON")).toBe(true);
  });

  for (const [label, mutate] of INVALID) {
    it(`refuses: ${label} (so does the schema)`, () => {
      const payload = valid() as Record<string, unknown> & { readings: Record<string, unknown>[] };
      mutate(payload);
      expect(isPlainValidTelemetry(payload)).toBe(false);
      expect(TelemetryPayload.safeParse(payload).success).toBe(false);
    });
  }

  it("leaves to the schema what it would change: a __proto__ measurement (the schema drops it)", () => {
    const payload = valid() as { readings: Record<string, unknown>[] };
    reading0(payload).values = JSON.parse('{"__proto__": 1, "frequencyHz": 50}');
    expect(isPlainValidTelemetry(payload)).toBe(false);
    const parsed = TelemetryPayload.safeParse(payload);
    expect(parsed.success && parsed.data.readings[0]?.values).toEqual({ frequencyHz: 50 });
  });

  it("never accepts what the schema refuses: 5,000 random mutations", () => {
    // A small deterministic generator (mulberry32), so a failure replays.
    let state = 0x5eed;
    const random = () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
    const odd: unknown[] = [
      null,
      true,
      0,
      -0,
      1,
      -1,
      0.5,
      1e21,
      "",
      "x",
      "gw-1",
      "synced",
      "2026-13-01T00:00:00.000Z",
      "2026-04-31T00:00:00.000Z",
      "2000-02-29T00:00:00.000Z",
      "0000-01-01T00:00:00.000Z",
      "9999-12-31T23:59:59.999Z",
      [],
      {},
      { code: "c", message: "m" },
      [{ code: "c", message: "m" }],
      { frequencyHz: 50 },
      { frequencyHz: "50" },
    ];
    const readingKeys = ["meterId", "seq", "ts", "clock", "values", "errors", "other"];
    const topKeys = ["v", "gatewayId", "batchId", "sentAt", "readings", "other"];
    let accepted = 0;
    for (let i = 0; i < 5_000; i++) {
      const payload = valid() as Record<string, unknown> & { readings: Record<string, unknown>[] };
      const changes = 1 + Math.floor(random() * 3);
      for (let c = 0; c < changes; c++) {
        const reading: unknown = Array.isArray(payload.readings) ? pick(payload.readings) : undefined;
        const target =
          random() < 0.7 && typeof reading === "object" && reading !== null
            ? (reading as Record<string, unknown>)
            : payload;
        const key = pick(target === payload ? topKeys : readingKeys);
        if (random() < 0.2) delete target[key];
        else target[key] = structuredClone(pick(odd));
      }
      if (expectAgreement(payload, `mutation ${i}: ${JSON.stringify(payload)}`)) accepted++;
    }
    // Some mutations keep the payload valid (a value for a value): the fast path takes those.
    expect(accepted).toBeGreaterThan(0);
  });

  it("reads ISO times exactly like z.iso.datetime({ offset: false, precision: 3 })", () => {
    const schema = TelemetryPayload.shape.sentAt;
    let checked = 0;
    for (const year of ["0000", "0004", "1900", "1999", "2000", "2024", "2100", "2400", "9999"]) {
      for (let month = 0; month <= 13; month++) {
        for (const day of [0, 1, 28, 29, 30, 31, 32]) {
          for (const time of ["00:00:00.000", "23:59:59.999", "24:00:00.000", "12:60:00.000", "12:00:60.000"]) {
            const text = `${year}-${String(month).padStart(2, "0")}-${String(day).padStart(2, "0")}T${time}Z`;
            expect(isIsoTimeMs(text), text).toBe(schema.safeParse(text).success);
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(9 * 14 * 7 * 5);
  });
});
