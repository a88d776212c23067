import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { GatewayState, StatusSnapshot } from "./gatewayState.js";
import { createStatusRegistry } from "./statusMetrics.js";

const SNAPSHOT: StatusSnapshot = {
  gatewayId: 'gw-"1"',
  version: "1.0.0",
  now: "2026-01-01T00:00:00.000Z",
  uptimeS: 12,
  uplink: { state: "retrying", reason: null, publishedBatches: 3, rejectedBatches: 1 },
  outbox: {
    bufferedReadings: 5,
    oldestUnsentTs: null,
    oldestUnsentAgeS: null,
    usedBytes: 1,
    capBytes: null,
    thinnedReadings: 7,
    droppedReadings: 0,
    pendingEvents: 2,
  },
  certificate: { file: "gw.crt", notAfter: "2026-03-01T00:00:00.000Z", expiresInDays: 40, warning: false, error: null },
  clock: { synced: true },
  disk: { path: "/data", usedBytes: 100, totalBytes: 1000, usedPercent: 10 },
  buses: [{ id: "bus1", polls: 1, readings: 1, failedRequests: 3, skippedPolls: 0 }],
  meters: [
    {
      id: "m1",
      busId: "bus1",
      state: "ok",
      pollIntervalMs: 1000,
      lastReadingTs: "2026-01-01T00:00:00.000Z",
      lastReadingAgeS: 2,
      readings: 10,
      readingsWithErrors: 0,
      errorCount: 1,
      failedPollsInARow: 0,
      lastErrors: [],
      values: { voltageL1V: 230.1 },
    },
  ],
  events: [],
};

/** /metrics for one snapshot, as a scrape gets it. */
function metricsOf(snapshot: StatusSnapshot): Promise<string> {
  const state = { snapshot: () => snapshot } as unknown as GatewayState;
  return createStatusRegistry(state).metrics();
}

describe("status metrics", () => {
  it("writes every figure as a gauge in the Prometheus text format", async () => {
    const text = await metricsOf(SNAPSHOT);
    expect(text).toContain(
      '# HELP edgemeter_gateway_info Gateway id and version (value always 1).\n# TYPE edgemeter_gateway_info gauge\nedgemeter_gateway_info{gateway_id="gw-\\"1\\"",version="1.0.0"} 1\n\n',
    );
    expect(text).toContain('edgemeter_uplink_state{state="retrying"} 1\nedgemeter_uplink_state{state="rejected"} 0');
    expect(text).toMatch(/^edgemeter_certificate_expiry_days\{file="gw.crt"\} 40$/m);
    expect(text).toMatch(/^edgemeter_disk_used_bytes\{path="\/data"\} 100$/m);
    expect(text).toMatch(/^edgemeter_outbox_thinned_readings 7$/m);
    expect(text).toMatch(/^edgemeter_meter_state\{meter="m1",state="ok"\} 1$/m);
    expect(text).toMatch(/^edgemeter_meter_value\{meter="m1",measurement="voltageL1V"\} 230\.1$/m);
    expect(text).toMatch(/^edgemeter_faults_active 0\n$/m);
  });

  it("uses prom-client's own classes (loaded from their modules, not its index)", () => {
    const state = { snapshot: () => SNAPSHOT } as unknown as GatewayState;
    expect(createStatusRegistry(state)).toBeInstanceOf(Registry);
  });

  it("leaves out what is not known rather than reporting 0", async () => {
    const text = await metricsOf({ ...SNAPSHOT, certificate: null, disk: null });
    expect(text).toContain("# TYPE edgemeter_certificate_expiry_days gauge\n\n");
    expect(text).not.toMatch(/^edgemeter_certificate_expiry_days[ {]/m);
    expect(text).not.toMatch(/^edgemeter_disk_(used|total)_bytes[ {]/m);
  });
});
