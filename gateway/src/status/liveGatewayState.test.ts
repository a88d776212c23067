import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FakeClock } from "../time/fakeClock.js";
import type { UplinkState } from "../uplink/uplink.js";
import { LiveGatewayState } from "./liveGatewayState.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(options: { chartHistory?: boolean } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "status-state-"));
  dirs.push(dir);
  const clock = new FakeClock();
  const facts = {
    uplink: "connecting" as UplinkState,
    stats: { publishedBatches: 0, rejectedBatches: 0 },
    depth: 0,
    oldestTs: null as string | null,
    problem: undefined as { problem: string | null; detail: string | null; nextAttemptAt?: string | null } | undefined,
  };
  const state = new LiveGatewayState({
    gatewayId: "gw-1",
    version: "1.2.3",
    clock,
    meters: [
      { id: "m1", busId: "bus1", pollIntervalMs: 1_000 },
      { id: "m2", busId: "bus1", pollIntervalMs: 60_000 },
    ],
    outbox: { depth: () => facts.depth, oldestTs: () => facts.oldestTs },
    uplinkState: () => facts.uplink,
    uplinkProblem: () => facts.problem,
    forwarderStats: () => facts.stats,
    busStats: () => [{ id: "bus1", polls: 1, readings: 1, failedRequests: 0, skippedPolls: 0 }],
    dataDir: dir,
    ...options,
  });
  return { clock, facts, state };
}

describe("LiveGatewayState", () => {
  it("tells waiting, ok, errors and offline meters apart", async () => {
    const { clock, state } = setup();
    const meter = (id: string) => state.snapshot().meters.find((m) => m.id === id);
    expect(meter("m1")?.state).toBe("waiting");
    const ts = new Date(clock.nowMs()).toISOString();
    state.recordReading({ meterId: "m1", ts, clock: "synced", values: { voltageL1V: 231.5 } });
    expect(meter("m1")).toMatchObject({ state: "ok", lastReadingTs: ts, values: { voltageL1V: 231.5 }, errorCount: 0 });
    state.recordReading({
      meterId: "m1",
      ts,
      clock: "synced",
      values: { voltageL1V: 231.6 },
      errors: [{ code: "modbus.timeout", message: "input 52+2: timed out" }],
    });
    expect(meter("m1")).toMatchObject({ state: "errors", errorCount: 1, readingsWithErrors: 1, readings: 2 });
    await clock.advance(10_001);
    // Offline after three poll intervals, but never sooner than 10 s.
    expect(meter("m1")?.state).toBe("offline");
    expect(meter("m1")?.lastReadingAgeS).toBe(10);
    // A slow meter (1-minute polls) is still waiting after 10 s.
    expect(meter("m2")?.state).toBe("waiting");
    await clock.advance(180_000);
    expect(meter("m2")?.state).toBe("offline");
    // Readings of meters the gateway does not poll are ignored.
    state.recordReading({ meterId: "elsewhere", ts, clock: "synced", values: { voltageL1V: 1 } });
    expect(state.snapshot().meters.map((m) => m.id)).toEqual(["m1", "m2"]);
  });

  it("reports the uplink as rejected after a refused batch until a publish succeeds", () => {
    const { facts, state } = setup();
    expect(state.snapshot().uplink).toMatchObject({ state: "retrying" });
    facts.uplink = "connected";
    expect(state.snapshot().uplink).toMatchObject({ state: "connected", reason: null });
    facts.stats = { publishedBatches: 0, rejectedBatches: 1 };
    const rejected = state.snapshot().uplink;
    expect(rejected.state).toBe("rejected");
    expect(rejected.reason).toMatch(/not authorized/);
    facts.stats = { publishedBatches: 1, rejectedBatches: 1 };
    expect(state.snapshot().uplink.state).toBe("connected");
  });

  it("explains why the uplink is down, in words, with the next attempt", () => {
    const { clock, facts, state } = setup();
    facts.uplink = "disconnected";
    facts.problem = {
      problem: "brokerUnreachable",
      detail: "connect ECONNREFUSED 10.0.0.1:8883",
      nextAttemptAt: new Date(clock.nowMs() + 4_200).toISOString(),
    };
    expect(state.snapshot().uplink).toMatchObject({
      state: "retrying",
      reason:
        "broker unreachable (connection refused: broker down or restarting) (connect ECONNREFUSED 10.0.0.1:8883); next attempt in 5 s",
    });
    facts.problem = { problem: "certificateExpired", detail: null };
    expect(state.snapshot().uplink).toMatchObject({
      state: "rejected",
      reason: "the client certificate has expired: renew it",
    });
    facts.uplink = "connected";
    expect(state.snapshot().uplink).toMatchObject({ state: "connected", reason: null });
  });

  it("shows the outbox depth and the age of the oldest unsent reading", async () => {
    const { clock, facts, state } = setup();
    facts.depth = 42;
    facts.oldestTs = new Date(clock.nowMs()).toISOString();
    await clock.advance(90_000);
    expect(state.snapshot().outbox).toEqual({
      bufferedReadings: 42,
      oldestUnsentTs: facts.oldestTs,
      oldestUnsentAgeS: 90,
      // This outbox reports no cap or counters (facts.outboxStats absent).
      usedBytes: null,
      capBytes: null,
      thinnedReadings: 0,
      droppedReadings: 0,
      pendingEvents: 0,
    });
    expect(state.snapshot().certificate).toBeNull();
    expect(state.snapshot().disk?.totalBytes).toBeGreaterThan(0);
  });

  it("keeps chart history unless told not to (no status page: no charts to draw)", async () => {
    for (const chartHistory of [true, false]) {
      const { clock, state } = setup({ chartHistory });
      for (let i = 0; i < 3; i++) {
        state.recordReading({
          meterId: "m1",
          ts: new Date(clock.nowMs()).toISOString(),
          clock: "synced",
          values: { voltageL1V: 230 + i },
        });
        await clock.advance(1_000);
      }
      const history = state.meterHistory("m1");
      expect(history?.tsMs.length, `chartHistory ${chartHistory}`).toBe(chartHistory ? 3 : 0);
      // The live values do not depend on it.
      expect(state.snapshot().meters[0]?.values).toEqual({ voltageL1V: 232 });
      expect(state.meterHistory("nope")).toBeUndefined();
    }
  });

  it("merges a fault's start, updates and end into one row with its extreme value", async () => {
    const { clock, state } = setup();
    let changes = 0;
    state.onChange(() => changes++);
    const startTs = new Date(clock.nowMs()).toISOString();
    state.recordMeterEvent({
      eventId: "e1",
      meterId: "m1",
      kind: "voltageSag",
      state: "start",
      phase: "L1",
      value: 200,
      threshold: 207,
      ts: startTs,
      durationMs: null,
      clock: "synced",
    });
    await clock.advance(3_000);
    expect(state.snapshot().events).toEqual([
      expect.objectContaining({ eventId: "e1", active: true, durationMs: 3_000, extremeValue: 200, endTs: null }),
    ]);
    const endTs = new Date(clock.nowMs()).toISOString();
    state.recordMeterEvent({
      eventId: "e1",
      meterId: "m1",
      kind: "voltageSag",
      state: "end",
      phase: "L1",
      value: 180,
      threshold: 207,
      ts: endTs,
      durationMs: 3_000,
      clock: "synced",
    });
    // An end whose start this process never saw (it began before a restart).
    state.recordMeterEvent({
      eventId: "e0",
      meterId: "m2",
      kind: "meterBack",
      state: "end",
      phase: null,
      value: null,
      threshold: null,
      ts: endTs,
      durationMs: 60_000,
      clock: "synced",
    });
    const events = state.snapshot().events;
    expect(events.map((e) => [e.eventId, e.active, e.extremeValue, e.durationMs])).toEqual([
      ["e1", false, 180, 3_000],
      ["e0", false, null, 60_000],
    ]);
    expect(changes).toBe(3);
  });
});
