import { loadProfile, planReads, type ReadRequest } from "@edgemeter/hardware";
import { EdgemeterError } from "@edgemeter/shared";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { NewReading } from "../outbox/outbox.js";
import { FakeClock } from "../time/fakeClock.js";
import { BusScheduler, type BusSchedulerOptions, type PolledMeter } from "./busScheduler.js";
import type { ModbusPort, RegisterFunction } from "./modbusPort.js";
import { nextDue } from "./pollSchedule.js";

const PLAN = planReads(loadProfile("sdm630"));

interface Call {
  startMs: number;
  endMs: number;
  unitId: number;
  address: number;
}

type Answer = { delayMs: number; error?: EdgemeterError };

/** In-memory fake of the ModbusPort: answers zeros after a delay on the fake clock, or fails. */
class FakeModbusPort implements ModbusPort {
  readonly calls: Call[] = [];
  constructor(
    private readonly clock: FakeClock,
    private readonly answer: (unitId: number, address: number, callIndex: number) => Answer,
  ) {}
  async readRegisters(unitId: number, _fn: RegisterFunction, address: number, count: number): Promise<number[]> {
    const startMs = this.clock.monotonicMs();
    const { delayMs, error } = this.answer(unitId, address, this.calls.length);
    const call: Call = { startMs, endMs: startMs, unitId, address };
    this.calls.push(call);
    await this.clock.sleep(delayMs);
    call.endMs = this.clock.monotonicMs();
    if (error !== undefined) throw error;
    return new Array<number>(count).fill(0);
  }
  async close(): Promise<void> {}
}

function meter(id: string, unitId: number, pollIntervalMs: number, requests: readonly ReadRequest[]): PolledMeter {
  return { id, unitId, pollIntervalMs, requests };
}

function setup(
  meters: PolledMeter[],
  answer: (unitId: number, address: number, callIndex: number) => Answer,
  tuning: Partial<Pick<BusSchedulerOptions, "retries" | "offlineAfterPolls" | "maxReprobeIntervalMs">> = {},
) {
  const clock = new FakeClock();
  const t0 = clock.monotonicMs();
  const port = new FakeModbusPort(clock, answer);
  const readings: NewReading[] = [];
  const logs: Array<{ level: number; msg: string; meterId?: string }> = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => logs.push(JSON.parse(line)) });
  const scheduler = new BusScheduler({
    busId: "bus1",
    port,
    meters,
    clock,
    onReading: (r) => readings.push(r),
    logger,
    random: () => 0.5,
    ...tuning,
  });
  const startsOf = (unitId: number) =>
    port.calls.filter((c) => c.unitId === unitId && c.address === PLAN[0]?.address).map((c) => c.startMs - t0);
  return { clock, t0, port, readings, logs, scheduler, startsOf };
}

/** Stops the scheduler, letting the fake time run so the poll in progress can end. */
async function stop(clock: FakeClock, scheduler: BusScheduler): Promise<void> {
  const stopped = scheduler.stop();
  await clock.advance(60_000);
  await stopped;
}

const timeout = (unitId: number) =>
  new EdgemeterError("modbus.timeout", `unit ${unitId}: no answer within 1000 ms`, { retryable: true });

describe("nextDue", () => {
  it("adds one interval to the previous due time, skipping slots that already passed", () => {
    expect(nextDue(1_000, 1_000, 1_300)).toEqual({ dueMs: 2_000, skipped: 0 });
    expect(nextDue(1_000, 1_000, 2_000)).toEqual({ dueMs: 2_000, skipped: 0 });
    expect(nextDue(1_000, 1_000, 3_500)).toEqual({ dueMs: 4_000, skipped: 2 });
  });
});

describe("BusScheduler (fake clock, fake port)", () => {
  it("polls drift-free: starts stay on the interval grid whatever each poll takes", async () => {
    const { clock, scheduler, startsOf, readings, t0 } = setup([meter("m1", 1, 1_000, PLAN.slice(0, 1))], () => ({
      delayMs: 300,
    }));
    scheduler.start();
    await clock.advance(5_000);
    await stop(clock, scheduler);
    // now + interval would give 0, 1300, 2600, 3900.
    expect(startsOf(1)).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000]);
    // Each reading is stamped with its poll's start, on the same grid; stop() let the last poll finish.
    expect(readings.map((r) => Date.parse(r.ts) - t0)).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000]);
  });

  it("skips slots missed during a slow poll instead of bursting to catch up", async () => {
    const { clock, scheduler, startsOf } = setup([meter("m1", 1, 1_000, PLAN.slice(0, 1))], (_u, _a, index) => ({
      delayMs: index === 1 ? 2_500 : 100,
    }));
    scheduler.start();
    await clock.advance(5_000);
    await stop(clock, scheduler);
    // The poll due at 1000 ends at 3500: the 2000 and 3000 slots are gone, the next is 4000.
    expect(startsOf(1)).toEqual([0, 1_000, 4_000, 5_000]);
    expect(scheduler.stats().skippedPolls).toBe(2);
  });

  it("polls meters in turn, one request in flight, each at its own interval", async () => {
    const { clock, scheduler, startsOf, port } = setup(
      [meter("m1", 1, 1_000, PLAN.slice(0, 1)), meter("m2", 2, 1_500, PLAN.slice(0, 1))],
      () => ({ delayMs: 100 }),
    );
    scheduler.start();
    await clock.advance(5_000);
    await stop(clock, scheduler);
    expect(startsOf(1)).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000]);
    // m2 waits its turn at 0 and 3000, yet its grid stays 0, 1500, 3000, 4500.
    expect(startsOf(2)).toEqual([100, 1_500, 3_100, 4_500]);
    for (let i = 1; i < port.calls.length; i++) {
      expect(port.calls[i]?.startMs).toBeGreaterThanOrEqual(port.calls[i - 1]?.endMs ?? Number.POSITIVE_INFINITY);
    }
  });

  it("reads the whole plan per poll and keeps what could be read when a request fails", async () => {
    const plan = PLAN.slice(0, 3);
    const failing = plan[1]?.address;
    const { clock, scheduler, readings, port } = setup([meter("m1", 1, 1_000, plan)], (_unit, address) =>
      address === failing
        ? {
            delayMs: 10,
            // 4 (Server Device Failure): a refusal that splitting would not cure.
            error: new EdgemeterError("modbus.exception", "server device failure", { context: { exceptionCode: 4 } }),
          }
        : { delayMs: 10 },
    );
    scheduler.start();
    await clock.advance(0);
    await stop(clock, scheduler);
    // An exception is the meter answering: the bus is fine, so the third request still goes out.
    expect(port.calls.map((c) => c.address)).toEqual(plan.map((r) => r.address));
    const [reading] = readings;
    const expected = [...(plan[0]?.registers ?? []), ...(plan[2]?.registers ?? [])].map((r) => r.measurement).sort();
    expect(Object.keys(reading?.values ?? {}).sort()).toEqual(expected);
    expect(reading?.errors).toEqual([
      { code: "modbus.exception", message: expect.stringContaining(`input ${failing}+`) },
    ]);
    expect(reading?.clock).toBe("synced");
  });

  it("gives no reading for a dead meter, skips its other requests, warns once, and logs the recovery", async () => {
    let dead = true;
    const { clock, scheduler, readings, port, logs } = setup(
      [meter("m1", 1, 1_000, PLAN.slice(0, 2)), meter("m2", 2, 1_000, PLAN.slice(0, 2))],
      (unitId) => (unitId === 2 && dead ? { delayMs: 1_000, error: timeout(2) } : { delayMs: 10 }),
      // Without retries and before it is declared offline: what one failed poll costs.
      { retries: 0, offlineAfterPolls: 100 },
    );
    scheduler.start();
    await clock.advance(6_500);
    expect(readings.map((r) => r.meterId).every((id) => id === "m1")).toBe(true);
    expect(readings.length).toBeGreaterThanOrEqual(4);
    // One request per poll of the dead meter: the second was skipped, not waited for.
    const m2Calls = port.calls.filter((c) => c.unitId === 2);
    expect(m2Calls.length).toBe(new Set(m2Calls.map((c) => c.startMs)).size);
    expect(m2Calls.every((c) => c.address === PLAN[0]?.address)).toBe(true);
    const warns = logs.filter((l) => l.level === 40 && l.msg.includes("m2"));
    const debugs = logs.filter((l) => l.level === 20 && l.msg.includes("meter m2 gave no values"));
    expect(warns).toHaveLength(1);
    expect(debugs.length).toBeGreaterThanOrEqual(2);

    dead = false;
    await clock.advance(2_500);
    await stop(clock, scheduler);
    expect(readings.some((r) => r.meterId === "m2")).toBe(true);
    expect(logs.some((l) => l.level === 30 && l.msg === "meter m2 recovered")).toBe(true);
  });
});

describe("BusScheduler failures (fake clock, fake port)", () => {
  const crc = () => new EdgemeterError("modbus.crc", "CRC error", { retryable: true });

  it("retries a retryable failure with backoff and still delivers the reading", async () => {
    const { clock, scheduler, readings, port } = setup([meter("m1", 1, 1_000, PLAN.slice(0, 1))], (_u, _a, index) =>
      index === 0 ? { delayMs: 20, error: crc() } : { delayMs: 20 },
    );
    scheduler.start();
    await clock.advance(500);
    await stop(clock, scheduler);
    expect(port.calls.slice(0, 2).map((c) => c.address)).toEqual([PLAN[0]?.address, PLAN[0]?.address]);
    // random() = 0.5 of a 50 ms ceiling: the retry waits 25 ms after the failed attempt.
    expect((port.calls[1]?.startMs ?? 0) - (port.calls[0]?.endMs ?? 0)).toBe(25);
    expect(readings[0]?.errors).toBeUndefined();
    expect(scheduler.stats().retries).toBe(1);
  });

  it("marks a dead meter offline after N polls and re-probes it with doubling backoff, healthy meters untouched", async () => {
    let dead = true;
    const { clock, scheduler, port, t0, startsOf, readings } = setup(
      [meter("m1", 1, 1_000, PLAN.slice(0, 2)), meter("dead", 2, 1_000, PLAN.slice(0, 2))],
      (unitId) => (unitId === 2 && dead ? { delayMs: 100, error: timeout(2) } : { delayMs: 10 }),
      { retries: 0, offlineAfterPolls: 3, maxReprobeIntervalMs: 8_000 },
    );
    scheduler.start();
    await clock.advance(30_000);
    const deadStarts = port.calls.filter((c) => c.unitId === 2).map((c) => c.startMs - t0);
    // Three polls on the grid (0, 1000, 2000), then probes 1 s, 2 s, 4 s, 8 s, 8 s… after each failed one.
    const gaps = deadStarts.slice(1).map((start, i) => start - (deadStarts[i] ?? 0));
    expect(gaps.slice(0, 2)).toEqual([1_000, 1_000]);
    expect(gaps.slice(2).map((g) => Math.round(g / 100) * 100)).toEqual([1_100, 2_100, 4_100, 8_100, 8_100]);
    expect(scheduler.meterStats().find((m) => m.meterId === "dead")?.state).toBe("offline");
    // The healthy meter kept every slot of its grid.
    expect(startsOf(1)).toEqual(Array.from({ length: 31 }, (_, i) => i * 1_000));
    expect(scheduler.meterStats().find((m) => m.meterId === "m1")?.skippedPolls).toBe(0);
    dead = false;
    await clock.advance(10_000);
    await stop(clock, scheduler);
    expect(scheduler.meterStats().find((m) => m.meterId === "dead")?.state).toBe("online");
    // The successful probe read one request; the whole plan follows at once, not an interval later.
    const recovered = readings.filter((r) => r.meterId === "dead");
    const probeAt = Date.parse(recovered[0]?.ts ?? "");
    expect(Object.keys(recovered[0]?.values ?? {})).toHaveLength(PLAN[0]?.registers.length ?? -1);
    expect(Object.keys(recovered[1]?.values ?? {})).toHaveLength(
      (PLAN[0]?.registers.length ?? 0) + (PLAN[1]?.registers.length ?? 0),
    );
    expect(Date.parse(recovered[1]?.ts ?? "") - probeAt).toBeLessThan(1_000);
  });

  it("splits a merged read refused with Illegal Data Address, remembers the split and logs it once", async () => {
    const merged = PLAN.find((r) => r.registers.length >= 4);
    if (merged === undefined) throw new Error("sdm630 plan has no merged read");
    const { clock, scheduler, readings, port, logs } = setup([meter("m1", 1, 1_000, [merged])], () => ({
      delayMs: 10,
      // This meter refuses any read longer than one float: the plan ends up one read per register.
      ...(lastCount > 2
        ? { error: new EdgemeterError("modbus.exception", "illegal data address", { context: { exceptionCode: 2 } }) }
        : {}),
    }));
    let lastCount = 0;
    const read = port.readRegisters.bind(port);
    port.readRegisters = (unitId, fn, address, count) => {
      lastCount = count;
      return read(unitId, fn, address, count);
    };
    scheduler.start();
    await clock.advance(2_000);
    await stop(clock, scheduler);
    expect(readings).toHaveLength(3);
    for (const reading of readings) {
      expect(Object.keys(reading.values).sort()).toEqual(merged.registers.map((r) => r.measurement).sort());
      expect(reading.errors).toBeUndefined();
    }
    expect(scheduler.meterStats()[0]?.requests).toBe(merged.registers.length);
    // The second and third polls use the remembered plan: no refused read any more.
    const perPoll = port.calls.length - 2 * merged.registers.length;
    expect(perPoll).toBe(2 * merged.registers.length - 1);
    const splitLogs = logs.filter((l) => l.msg.includes("refused a merged read"));
    expect(splitLogs).toHaveLength(merged.registers.length - 1);
  });
});
