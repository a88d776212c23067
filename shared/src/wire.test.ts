import { describe, expect, it } from "vitest";
import { EdgemeterError, isRetryable } from "./errors.js";
import { parseTopic, topicFor } from "./topics.js";
import { parseOrThrow } from "./validation.js";
import { TelemetryPayload } from "./wire.js";

const good = {
  v: 1,
  gatewayId: "gw-01",
  batchId: "b1",
  sentAt: "2026-11-22T10:00:00.000Z",
  readings: [
    {
      meterId: "m1",
      seq: 0,
      ts: "2026-11-22T09:59:59.000Z",
      clock: "synced",
      values: { voltageL1V: 230.1, importEnergyKwh: 1234.5 },
    },
  ],
};

describe("wire contract", () => {
  it("accepts a valid telemetry payload", () => {
    expect(TelemetryPayload.parse(good).readings[0]?.values.voltageL1V).toBe(230.1);
  });

  it("rejects unknown measurements, wrong versions and bad times with their paths", () => {
    const bad = structuredClone(good) as Record<string, unknown>;
    bad.v = 2;
    (bad.readings as Array<Record<string, unknown>>)[0] = {
      ...good.readings[0],
      ts: "yesterday",
      values: { voltage: 1 },
    };
    try {
      parseOrThrow(TelemetryPayload, bad, "edgemeter/v1/gw/gw-01/telemetry", "ingest.schema");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(EdgemeterError);
      const message = (error as Error).message;
      expect(message).toContain("edgemeter/v1/gw/gw-01/telemetry: v:");
      expect(message).toContain("readings.0.ts:");
      expect(message).toContain(`readings.0.values: Unrecognized key: "voltage"`);
      expect(isRetryable(error)).toBe(false);
    }
  });

  it("builds and parses topics, refusing wildcards in ids", () => {
    expect(topicFor("telemetry", "gw-01")).toBe("edgemeter/v1/gw/gw-01/telemetry");
    expect(parseTopic("edgemeter/v1/gw/gw-01/events")).toEqual({ gatewayId: "gw-01", kind: "events" });
    expect(parseTopic("edgemeter/v1/gw/+/events")).toBeNull();
    expect(parseTopic("edgemeter/v1/gw/gw-01/other")).toBeNull();
    expect(() => topicFor("status", "a/b")).toThrow();
  });
});
