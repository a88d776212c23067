import type { ReadRequest } from "@edgemeter/hardware/decoding";
import { decodeResponse, splitRequest } from "@edgemeter/hardware/decoding";
import type { Reading } from "@edgemeter/shared";
import { describeError, EdgemeterError, isEdgemeterError } from "@edgemeter/shared/core";
import type { Logger } from "pino";
import { fullJitterBackoffMs } from "../forwarder/backoff.js";
import { RepeatedFailure } from "../logging/repeatedFailure.js";
import type { NewReading } from "../outbox/outbox.js";
import type { Clock } from "../time/clock.js";
import type { ModbusPort } from "./modbusPort.js";
import { nextDue } from "./pollSchedule.js";

/** A meter as the scheduler sees it: where it answers and what to read. */
export interface PolledMeter {
  id: string;
  unitId: number;
  pollIntervalMs: number;
  /** The meter's read plan (`planReads(profile)`), read in this order every poll. */
  requests: readonly ReadRequest[];
}

export interface BusSchedulerOptions {
  busId: string;
  port: ModbusPort;
  meters: readonly PolledMeter[];
  clock: Clock;
  /**
   * Receives each reading; main wires this to the outbox append, which must happen before
   * anything else. A throw is logged and the reading is lost (the disk failed).
   */
  onReading: (reading: NewReading) => void;
  logger: Logger;
  /** Extra attempts of a request that failed retryably (timeout, CRC error). Default 1. */
  retries?: number;
  /** First retry waits up to this long (full jitter, doubling per attempt). Default 50 ms. */
  retryBaseMs?: number;
  /** Consecutive polls without any value after which a meter is offline. Default 3. */
  offlineAfterPolls?: number;
  /** Cap of the re-probe backoff of an offline meter. Default 300 000 ms. */
  maxReprobeIntervalMs?: number;
  /** Randomness for the retry jitter, in [0, 1). Default Math.random. */
  random?: () => number;
}

export interface BusSchedulerStats {
  polls: number;
  readings: number;
  failedRequests: number;
  /** Poll slots skipped because the bus was still busy when they came due. */
  skippedPolls: number;
  /** Requests repeated after a retryable failure. */
  retries: number;
  /** Merged reads split after the meter refused them with Illegal Data Address. */
  splits: number;
  /** Meters currently offline (only re-probed). */
  offlineMeters: number;
}

export interface MeterPollStats {
  meterId: string;
  state: "online" | "offline";
  polls: number;
  readings: number;
  /** Poll slots of this meter skipped because the bus was busy. */
  skippedPolls: number;
  /** Polls in a row that gave no value. */
  consecutiveFailedPolls: number;
  /** The read plan in use (after any splits). */
  requests: number;
}

type ReadingError = NonNullable<Reading["errors"]>[number];

/** The wire schema's bounds on a reading's errors. */
const MAX_ERRORS = 64;
const MAX_ERROR_MESSAGE = 500;
/** Modbus exception 2, Illegal Data Address (Modbus application protocol v1.1b3 §7). */
const ILLEGAL_DATA_ADDRESS = 2;

interface MeterState {
  meter: PolledMeter;
  /** The plan in use: starts as meter.requests, refused merged reads are replaced by their halves. */
  requests: ReadRequest[];
  dueMs: number;
  offline: boolean;
  /** While offline: the current re-probe interval (doubles up to maxReprobeIntervalMs). */
  reprobeIntervalMs: number;
  stats: Omit<MeterPollStats, "meterId" | "state" | "requests">;
}

/**
 * Polls the meters of one bus in turn, one request at a time, each meter at its own
 * drift-free interval. A poll reads the meter's whole read plan and yields at most one
 * reading stamped with the poll's start time: the values that could be read, and an error
 * entry for each request that failed. A meter that gave no value at all yields no reading.
 *
 * Failures: a retryable failure (timeout, CRC error) is retried `retries` times with
 * jittered backoff. After `offlineAfterPolls` polls in a row without a value the meter is
 * offline: it is then only re-probed with its first request, at an interval doubling from
 * its poll interval up to `maxReprobeIntervalMs`, so a dead meter costs the bus one
 * timeout per re-probe instead of one per poll, and healthy meters keep their interval.
 * A merged read refused with Illegal Data Address is split in two (recursively) and the
 * split is kept for the meter's next polls; it is logged once.
 */
export class BusScheduler {
  private readonly logger: Logger;
  private readonly failures = new Map<string, RepeatedFailure>();
  private readonly stopSignal = new AbortController();
  private running: Promise<void> | undefined;
  private readonly counters = { polls: 0, readings: 0, failedRequests: 0, skippedPolls: 0, retries: 0, splits: 0 };
  private readonly states: MeterState[];
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly offlineAfterPolls: number;
  private readonly maxReprobeIntervalMs: number;
  private readonly random: () => number;

  constructor(private readonly options: BusSchedulerOptions) {
    this.logger = options.logger;
    this.retries = options.retries ?? 1;
    this.retryBaseMs = options.retryBaseMs ?? 50;
    this.offlineAfterPolls = options.offlineAfterPolls ?? 3;
    this.maxReprobeIntervalMs = options.maxReprobeIntervalMs ?? 300_000;
    this.random = options.random ?? Math.random;
    this.states = options.meters.map((meter) => ({
      meter,
      requests: [...meter.requests],
      dueMs: 0,
      offline: false,
      reprobeIntervalMs: meter.pollIntervalMs,
      stats: { polls: 0, readings: 0, skippedPolls: 0, consecutiveFailedPolls: 0 },
    }));
  }

  start(): void {
    if (this.running !== undefined) return;
    this.running = this.loop().catch((error: unknown) => {
      this.logger.fatal({ err: error }, "bus scheduler stopped on an unexpected error");
    });
  }

  /** Stops polling; resolves after the poll in progress (bounded by the port's timeout) ended. */
  async stop(): Promise<void> {
    this.stopSignal.abort();
    await this.running;
  }

  stats(): BusSchedulerStats {
    return { ...this.counters, offlineMeters: this.states.filter((s) => s.offline).length };
  }

  /** Per-meter counters and state, in configuration order. */
  meterStats(): MeterPollStats[] {
    return this.states.map((s) => ({
      meterId: s.meter.id,
      state: s.offline ? "offline" : "online",
      requests: s.requests.length,
      ...s.stats,
    }));
  }

  private async loop(): Promise<void> {
    const { clock } = this.options;
    const startMs = clock.monotonicMs();
    // All meters are due at start; the bus polls them in configuration order.
    for (const state of this.states) state.dueMs = startMs;
    while (!this.stopSignal.signal.aborted) {
      let next = this.states[0];
      for (const state of this.states) if (next === undefined || state.dueMs < next.dueMs) next = state;
      if (next === undefined) return;
      const waitMs = next.dueMs - clock.monotonicMs();
      if (waitMs > 0) {
        await clock.sleep(waitMs, this.stopSignal.signal);
        continue;
      }
      const wasOffline = next.offline;
      await this.pollState(next);
      if (next.offline) {
        // Re-probe from now, not on the grid: the wait grows with every failed probe.
        if (wasOffline) next.reprobeIntervalMs = Math.min(this.maxReprobeIntervalMs, next.reprobeIntervalMs * 2);
        next.dueMs = clock.monotonicMs() + next.reprobeIntervalMs;
        continue;
      }
      if (wasOffline) {
        // The probe read only the first request: the whole plan is due now, and the grid restarts here.
        next.dueMs = clock.monotonicMs();
        continue;
      }
      const { dueMs, skipped } = nextDue(next.dueMs, next.meter.pollIntervalMs, clock.monotonicMs());
      if (skipped > 0) {
        this.counters.skippedPolls += skipped;
        next.stats.skippedPolls += skipped;
        this.logger.debug({ meterId: next.meter.id, skipped }, "bus busy: skipped poll slots");
      }
      next.dueMs = dueMs;
    }
  }

  /** One poll of one meter: every request of its read plan, decoded into at most one reading. */
  async poll(meter: PolledMeter): Promise<NewReading | null> {
    const state = this.states.find((s) => s.meter === meter);
    if (state === undefined) throw new EdgemeterError("internal.unknownMeter", `meter ${meter.id} is not on this bus`);
    return this.pollState(state);
  }

  private async pollState(state: MeterState): Promise<NewReading | null> {
    const { clock } = this.options;
    const { meter } = state;
    this.counters.polls++;
    state.stats.polls++;
    const ts = new Date(clock.nowMs()).toISOString();
    const synced = clock.isSynced();
    const values: NewReading["values"] = {};
    const errors: ReadingError[] = [];
    let connectionLost = false;
    // An offline meter is only re-probed with its first request: one timeout, not a plan's worth.
    const plan = state.offline ? state.requests.slice(0, 1) : [...state.requests];
    for (let index = 0; index < plan.length; index++) {
      const request = plan[index];
      if (request === undefined) continue;
      // Only for error messages: built when one is written, not for every request.
      const where = () => `${request.fn} ${request.address}+${request.count}`;
      if (connectionLost) {
        // After a timeout or a broken connection the meter's other requests would most likely
        // time out too, each holding up every other meter on the bus: skip them this poll.
        errors.push({ code: "modbus.skipped", message: `${where()}: skipped after the previous request failed` });
        continue;
      }
      try {
        const words = await this.readWithRetries(meter, request, state.offline ? 0 : this.retries);
        const decoded = decodeResponse(request, words);
        Object.assign(values, decoded.values);
        errors.push(...decoded.errors);
      } catch (error) {
        if (this.refusedAsMerged(error, request)) {
          // Read the halves now (they go next in this poll) and keep them for later polls.
          const halves = splitRequest(request);
          plan.splice(index + 1, 0, ...halves);
          this.replaceRequest(state, request, halves);
          continue;
        }
        this.counters.failedRequests++;
        const code = isEdgemeterError(error) ? error.code : "modbus.error";
        errors.push({ code, message: `${where()}: ${describeError(error)}` });
        connectionLost = code === "modbus.timeout" || code === "modbus.connection" || code === "modbus.crc";
      }
    }
    const failure = this.failureOf(meter.id);
    if (Object.keys(values).length === 0) {
      state.stats.consecutiveFailedPolls++;
      failure.fail({ meterId: meter.id, unitId: meter.unitId, errors }, `meter ${meter.id} gave no values`);
      if (!state.offline && state.stats.consecutiveFailedPolls >= this.offlineAfterPolls) {
        state.offline = true;
        state.reprobeIntervalMs = meter.pollIntervalMs;
        this.logger.warn(
          { meterId: meter.id, unitId: meter.unitId, failedPolls: state.stats.consecutiveFailedPolls },
          `meter ${meter.id} is offline: re-probing with growing backoff`,
        );
      }
      return null;
    }
    state.stats.consecutiveFailedPolls = 0;
    if (state.offline) {
      state.offline = false;
      this.logger.info({ meterId: meter.id }, `meter ${meter.id} is back online`);
    }
    failure.recover({ meterId: meter.id });
    const reading: NewReading = { meterId: meter.id, ts, clock: synced ? "synced" : "unsynced", values };
    if (errors.length > 0) {
      reading.errors = errors.slice(0, MAX_ERRORS).map((e) => ({
        code: e.code.slice(0, 64),
        message: e.message.slice(0, MAX_ERROR_MESSAGE),
      }));
    }
    try {
      this.options.onReading(reading);
      this.counters.readings++;
      state.stats.readings++;
    } catch (error) {
      this.logger.error({ meterId: meter.id, err: describeError(error) }, "could not store a reading: it is lost");
    }
    return reading;
  }

  private async readWithRetries(meter: PolledMeter, request: ReadRequest, retries: number): Promise<number[]> {
    const { clock, port } = this.options;
    for (let attempt = 0; ; attempt++) {
      try {
        return await port.readRegisters(meter.unitId, request.fn, request.address, request.count);
      } catch (error) {
        const retryable = isEdgemeterError(error) && error.retryable;
        if (!retryable || attempt >= retries || this.stopSignal.signal.aborted) throw error;
        this.counters.retries++;
        const delayMs = fullJitterBackoffMs(attempt + 1, this.retryBaseMs, this.retryBaseMs * 8, this.random);
        this.logger.debug({ meterId: meter.id, attempt: attempt + 1, delayMs, err: describeError(error) }, "retrying");
        await clock.sleep(delayMs, this.stopSignal.signal);
      }
    }
  }

  /** Illegal Data Address to a read that covers more than one register: the merge, not the register, is refused. */
  private refusedAsMerged(error: unknown, request: ReadRequest): boolean {
    if (!isEdgemeterError(error, "modbus.exception") || request.registers.length < 2) return false;
    const context = error.context as { exceptionCode?: unknown } | undefined;
    return context?.exceptionCode === ILLEGAL_DATA_ADDRESS;
  }

  private replaceRequest(state: MeterState, request: ReadRequest, halves: [ReadRequest, ReadRequest]): void {
    const at = state.requests.indexOf(request);
    if (at < 0) return;
    state.requests.splice(at, 1, ...halves);
    this.counters.splits++;
    // Once per split: the plan remembers it, so this does not repeat every poll.
    this.logger.warn(
      {
        meterId: state.meter.id,
        refused: `${request.fn} ${request.address}+${request.count}`,
        into: halves.map((h) => `${h.fn} ${h.address}+${h.count}`),
      },
      `meter ${state.meter.id} refused a merged read (Illegal Data Address): split it in two`,
    );
  }

  private failureOf(meterId: string): RepeatedFailure {
    let failure = this.failures.get(meterId);
    if (failure === undefined) {
      failure = new RepeatedFailure(this.logger.child({ meterId }), `meter ${meterId}`);
      this.failures.set(meterId, failure);
    }
    return failure;
  }
}
