import type { EventsPayload, Reading, TelemetryPayload } from "@edgemeter/shared";
import { EdgemeterError, isEdgemeterError, MAX_PAYLOAD_BYTES, topicFor, WIRE_VERSION } from "@edgemeter/shared/core";
import type { Logger } from "pino";
import { RepeatedFailure } from "../logging/repeatedFailure.js";
import type { BatchFrame, Outbox, RawOutboxBatch, SeqRange } from "../outbox/outbox.js";
import { type Clock, systemClock } from "../time/clock.js";
import type { Uplink } from "../uplink/uplink.js";
import { fullJitterBackoffMs } from "./backoff.js";

/**
 * Room left in each payload for the envelope around the readings array
 * (`{"v":1,"gatewayId":…,"batchId":…,"sentAt":…,"readings":}`, under 200 bytes).
 */
const ENVELOPE_RESERVE_BYTES = 256;
/** Events are ~300 bytes each: 200 stay far below the 128 KB payload limit. */
const MAX_EVENTS_PER_BATCH = 200;
/**
 * Most delivered readings' rows removed in one transaction when they cannot be cleared whole
 * (Outbox.purgeDelivered): SQLite needs about two microseconds per row, so a chunk blocks the
 * event loop for some 20 ms, well inside a Modbus timeout.
 */
const PURGE_CHUNK_READINGS = 10_000;
/** Smaller payloads (the steady state: a poll round) are sent as read, not pooled. */
const POOLED_PAYLOAD_MIN_BYTES = 16 * 1024;
/** The pause before each chunk of deletes when idle (see the forwarder loop). */
const ACK_IDLE_DELAY_MS = 20;
/** After removing delivered rows failed (a disk error), the next try waits this long: no log flood. */
const PURGE_RETRY_MS = 60_000;

/**
 * A batch read for sending: its payload is `pooled` (a pool buffer) or the buffer SQLite made.
 * `batch` without its bytes: nothing may keep a copied buffer alive (see pooledCopy).
 */
interface ReadBatch {
  batch: Omit<RawOutboxBatch, "json">;
  payload: Buffer;
  pooled: Buffer | undefined;
}

interface AwaitedAck {
  /** clock.monotonicMs() after which the publish counts as lost. */
  deadlineMs: number;
  fail: (error: EdgemeterError) => void;
}

type BatchOutcome =
  | { ok: true; promise: Promise<BatchOutcome> }
  | { ok: false; error: unknown; batchId: string; readings: number; promise: Promise<BatchOutcome> };

export interface ForwarderOptions {
  gatewayId: string;
  outbox: Outbox;
  uplink: Uplink;
  maxBatchReadings: number;
  /** Most bytes of one telemetry payload; capped at MAX_PAYLOAD_BYTES (AWS IoT Core's 128 KB). */
  maxBatchBytes: number;
  /** Longest sleep when there is nothing to send and no append woke the forwarder. */
  idleFlushMs: number;
  /**
   * Gives up waiting for a PUBACK after this long and retries the batch. mqtt.js may still
   * deliver the first copy after a reconnect: the cloud dedups on (gatewayId, seq).
   */
  ackTimeoutMs?: number;
  /**
   * Acknowledged readings are recorded as delivered (Outbox.ackRanges) at the latest this long
   * after their PUBACK, one transaction (one fsync) for all the batches acknowledged meanwhile,
   * not one per batch; an ack that a crash loses only means a resend, which the cloud dedups.
   * Also recorded: before starting over after a failure, when idle, at stop. Their rows are
   * removed only when there is nothing to send (Outbox.purgeDelivered), so a drain never waits
   * for SQLite deleting. Default 1000; 0 records at each PUBACK.
   */
  ackFlushMs?: number;
  /** Telemetry batches in flight at once (default 4; 1 = strictly one after the other). */
  windowBatches?: number;
  /**
   * Readings this returns true for are not sent yet, nor anything after them (seq order):
   * unsynced readings waiting to be re-stamped once the clock syncs.
   */
  hold?: (reading: Reading) => boolean;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  clock?: Clock;
  /** Jitter source in [0, 1). */
  random?: () => number;
  logger: Logger;
}

export interface ForwarderStats {
  publishedBatches: number;
  publishedReadings: number;
  failedBatches: number;
  rejectedBatches: number;
  publishedEvents: number;
}

/**
 * Moves readings from the outbox to the uplink: oldest batch first, deleted only after
 * the broker's PUBACK. On a rejection or a lost connection the batch stays in the outbox
 * and the forwarder backs off (exponential, full jitter, capped).
 */
export class Forwarder {
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly topic: string;
  private readonly maxPayloadBytes: number;
  private readonly publishFailure: RepeatedFailure;
  private running: Promise<void> | undefined;
  private stopping = false;
  /** Aborted by wake(): ends an idle wait early. */
  private idleWait = new AbortController();
  /** Aborted by stop(): ends any wait. */
  private readonly stopSignal = new AbortController();
  /** Aborted when stop()'s deadline passes: stops waiting for an in-flight PUBACK. */
  private readonly hardStop = new AbortController();
  /** Publishes waiting for their PUBACK (publishAcknowledged), timed out by watchAcks. */
  private readonly awaitingAcks = new Set<AwaitedAck>();
  private watchingAcks = false;
  /** Ends the watchdog's sleep: at a hard stop (fail what is in flight) and after stop (no timer left behind). */
  private readonly watchdogWake = new AbortController();
  private unsubscribes: Array<() => void> = [];
  /** Payload buffers for large batches, reused after their PUBACK (pooledCopy). */
  private payloadPool: Buffer[] = [];
  /** Counts wake() calls: a batch read ahead before the latest one is read again (see loop). */
  private wakeEpoch = 0;
  private readonly counters: ForwarderStats = {
    publishedBatches: 0,
    publishedReadings: 0,
    failedBatches: 0,
    rejectedBatches: 0,
    publishedEvents: 0,
  };
  private readonly eventsTopic: string;
  private readonly window: number;
  /** Acknowledged batches not recorded in the outbox yet (ackFlushMs), in PUBACK order. */
  private pendingAcks: SeqRange[] = [];
  /** clock.monotonicMs() of the oldest PUBACK in pendingAcks. */
  private pendingAcksSinceMs = 0;
  /** clock.monotonicMs() before which delivered rows are not removed (after a failure). */
  private purgeRetryAtMs = 0;

  constructor(private readonly options: ForwarderOptions) {
    this.logger = options.logger;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.topic = topicFor("telemetry", options.gatewayId);
    this.eventsTopic = topicFor("events", options.gatewayId);
    this.window = Math.max(1, options.windowBatches ?? 4);
    this.maxPayloadBytes = Math.min(options.maxBatchBytes, MAX_PAYLOAD_BYTES);
    this.publishFailure = new RepeatedFailure(this.logger, "telemetry publishing");
  }

  start(): void {
    if (this.running !== undefined) return;
    this.unsubscribes = [
      // New readings change nothing already stored (higher seqs): what was read ahead stays valid.
      this.options.outbox.onAppend(() => this.idleWait.abort()),
      this.options.uplink.on("state", () => this.wake()),
      // At the disk cap, delivered readings go before any unsent one is thinned (and counted).
      this.options.outbox.onCapReached(() => this.takePendingAcks()),
    ];
    this.running = this.loop().catch((error: unknown) => {
      this.logger.fatal({ err: error }, "forwarder stopped on an unexpected error");
    });
  }

  /** Ends an idle wait: there may be something to send, or the connection came up. */
  wake(): void {
    this.wakeEpoch++;
    this.idleWait.abort();
  }

  stats(): ForwarderStats {
    return { ...this.counters };
  }

  /**
   * Stops after the batch in flight, waiting at most `deadlineMs` for its PUBACK; an
   * unacknowledged batch simply stays in the outbox.
   */
  async stop(deadlineMs = 2_000): Promise<void> {
    this.stopping = true;
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    this.stopSignal.abort();
    this.wake();
    if (this.running === undefined) return;
    const timer = setTimeout(() => {
      this.hardStop.abort();
      this.watchdogWake.abort();
    }, deadlineMs);
    try {
      await this.running;
    } finally {
      clearTimeout(timer);
      this.watchdogWake.abort();
    }
  }

  private async loop(): Promise<void> {
    let failures = 0;
    /** Highest seq handed to the uplink and not known to have failed: the window continues after it. */
    let queuedUpToSeq = -1;
    const inFlight = new Set<Promise<BatchOutcome>>();
    const limits = {
      maxReadings: this.options.maxBatchReadings,
      maxBytes: this.maxPayloadBytes - ENVELOPE_RESERVE_BYTES,
    };
    // The whole TelemetryPayload in one buffer: the envelope around the readings' JSON as
    // stored, no parse and re-serialise per reading (the wire schema is checked in the tests).
    const readBatch = (): ReadBatch => {
      const batch = this.options.outbox.nextRawBatchAfter(
        queuedUpToSeq,
        limits,
        this.options.hold,
        telemetryFrame(this.options.gatewayId, new Date(this.clock.nowMs()).toISOString()),
      );
      // Copied at once, so the buffer SQLite made dies before any GC sees it (pooledCopy): only
      // the copy is kept, also while this batch waits read ahead (prepared).
      const pooled = batch.count > 0 ? this.pooledCopy(batch.json) : undefined;
      const { count, firstSeq, lastSeq, bytes } = batch;
      return {
        batch: { count, firstSeq, lastSeq, bytes },
        pooled,
        payload: pooled === undefined ? batch.json : pooled.subarray(0, bytes),
      };
    };
    /**
     * The batch after `afterSeq`, read while the window was full: sent at the next PUBACK without
     * waiting for SQLite, whose read (about as costly as sending the batch) then overlaps the
     * network round trip instead of lengthening it (issue 4 drain). Valid only for that position
     * and until the next wake() (a connection change, the clock's re-stamping: what is due may
     * have changed); new readings do not matter (higher seqs).
     */
    let prepared: { afterSeq: number; epoch: number; read: ReadBatch } | undefined;
    const dropPrepared = () => {
      // Never published: its buffer can go back to the pool at once.
      if (prepared?.read.pooled !== undefined) this.recycle(prepared.read.pooled);
      prepared = undefined;
    };
    const nextBatch = (): ReadBatch => {
      const ready = prepared;
      if (ready !== undefined && ready.afterSeq === queuedUpToSeq && ready.epoch === this.wakeEpoch) {
        prepared = undefined;
        return ready.read;
      }
      dropPrepared();
      return readBatch();
    };
    const backOff = async (error: unknown, what: string, detail: Record<string, unknown>) => {
      failures++;
      this.counters.failedBatches++;
      const rejected = isEdgemeterError(error, "uplink.rejected");
      if (rejected) this.counters.rejectedBatches++;
      const delayMs = fullJitterBackoffMs(
        failures,
        this.options.backoffBaseMs ?? 500,
        this.options.backoffCapMs ?? 30_000,
        this.random,
      );
      this.publishFailure.fail(
        {
          code: isEdgemeterError(error) ? error.code : undefined,
          err: String(error instanceof Error ? error.message : error),
          ...detail,
          retryInMs: delayMs,
        },
        rejected
          ? `the broker rejected a ${what} batch (check the broker ACL for this gateway); keeping it in the outbox`
          : isEdgemeterError(error, "uplink.noSubscribers")
            ? `no subscriber took the ${what} batch (is the cloud ingest connected?); keeping it in the outbox`
            : `${what} batch not acknowledged; keeping it in the outbox`,
      );
      await this.clock.sleep(delayMs, this.stopSignal.signal);
    };
    while (!this.stopping) {
      if (this.options.uplink.state !== "connected" && inFlight.size === 0) {
        this.flushAcks();
        // Offline is idle: the time to remove delivered rows (a chunk per pause, see below).
        if (this.purgeDue()) {
          if (await this.pausedForIdleDelete()) this.purgeDelivered();
          continue;
        }
        await this.waitIdle();
        continue;
      }
      // Fault events first (DESIGN "events — sent ahead of any telemetry backlog"): checked
      // before every telemetry batch, so a fault raised during a long drain waits for at most
      // the batches already in flight.
      const events = this.options.outbox.nextEvents(MAX_EVENTS_PER_BATCH);
      const firstEvent = events[0];
      const lastEvent = events.at(-1);
      if (firstEvent !== undefined && lastEvent !== undefined && this.options.uplink.state === "connected") {
        const payload: EventsPayload = {
          v: WIRE_VERSION,
          gatewayId: this.options.gatewayId,
          batchId: `e${firstEvent.rowId}-${lastEvent.rowId}`,
          sentAt: new Date(this.clock.nowMs()).toISOString(),
          events: events.map((e) => e.event),
        };
        try {
          await this.publishAcknowledged(this.eventsTopic, Buffer.from(JSON.stringify(payload)));
        } catch (error) {
          if (this.stopping && this.hardStop.signal.aborted) break;
          await backOff(error, "events", { batchId: payload.batchId, events: events.length });
          continue;
        }
        this.options.outbox.ackEvents(events.map((e) => e.rowId));
        this.counters.publishedEvents += events.length;
        failures = 0;
        this.publishFailure.recover();
        continue;
      }
      // Fill the window: several batches in flight hide the round trip to the broker (a PUBACK
      // per batch), which dominates the drain rate over a mobile link.
      while (inFlight.size < this.window && this.options.uplink.state === "connected" && !this.stopping) {
        const { batch, pooled, payload: bytes } = nextBatch();
        if (batch.count === 0) break;
        const first = batch.firstSeq;
        const last = batch.lastSeq;
        const count = batch.count;
        queuedUpToSeq = last;
        const batchId = `s${first}-${last}`;
        const outcome: Promise<BatchOutcome> = this.publishAcknowledged(this.topic, bytes).then(
          () => {
            // The uplink holds no reference to an acknowledged payload (Uplink.publish): reuse it.
            if (pooled !== undefined) this.recycle(pooled);
            // Only now, with the PUBACK in hand, may the outbox forget these readings.
            this.addAck({ first, last });
            this.counters.publishedBatches++;
            this.counters.publishedReadings += count;
            this.logger.debug({ batchId, readings: count, bytes: bytes.length }, "batch acknowledged");
            return { ok: true as const, promise: outcome };
          },
          (error: unknown) => ({ ok: false as const, error, batchId, readings: count, promise: outcome }),
        );
        inFlight.add(outcome);
      }
      // A full window while draining: read the next batch now, while the network works. (On a
      // worker thread it was slower: the batch crossed threads and the thread competed for the
      // same cores as the TLS work and the broker.)
      if (inFlight.size >= this.window && prepared === undefined) {
        const epoch = this.wakeEpoch;
        const read = readBatch();
        if (read.batch.count > 0) prepared = { afterSeq: queuedUpToSeq, epoch, read };
      }
      if (inFlight.size === 0) {
        // Nothing to send: the moment to record what was acknowledged and to remove delivered
        // rows, a chunk at a time, each after a short pause that new readings (an append wakes
        // it) or anything else due may take first: removing is the least urgent work there is.
        if (this.pendingAcks.length > 0 || this.purgeDue()) {
          if (await this.pausedForIdleDelete()) {
            this.flushAcks();
            this.purgeDelivered();
          }
          continue;
        }
        await this.waitIdle();
        continue;
      }
      const settled = await Promise.race(inFlight);
      inFlight.delete(settled.promise);
      if (settled.ok) {
        failures = 0;
        this.publishFailure.recover();
        continue;
      }
      // One batch failed: let the rest of the window settle (acknowledged ones are deleted),
      // then start again from the oldest unsent reading, in seq order.
      const rest = await Promise.all(inFlight);
      inFlight.clear();
      // Before starting over from the oldest unsent reading, or the acknowledged ones would go again.
      this.flushAcks();
      queuedUpToSeq = -1;
      dropPrepared();
      if (this.stopping && this.hardStop.signal.aborted) break;
      const failedCount = 1 + rest.filter((r) => !r.ok).length;
      await backOff(settled.error, "telemetry", {
        batchId: settled.batchId,
        readings: settled.readings,
        failedBatchesInWindow: failedCount,
      });
    }
    if (inFlight.size > 0) await Promise.all(inFlight);
    this.flushAcks();
  }

  /**
   * A copy of a large payload into a buffer of the pool, or undefined for a small one. Why: each
   * batch read from SQLite is a new 120 KB buffer, and one that is still in flight at the next
   * young-generation GC is promoted with its memory, which only a full GC frees: a drain then
   * ran a full GC every few megabytes (measured). Copied into a few long-lived buffers, the
   * fresh one dies young and cheaply. A buffer returns to the pool only after its PUBACK.
   */
  private pooledCopy(json: Buffer): Buffer | undefined {
    if (json.length < POOLED_PAYLOAD_MIN_BYTES || json.length > this.maxPayloadBytes) return undefined;
    const buffer = this.payloadPool.pop() ?? Buffer.allocUnsafeSlow(this.maxPayloadBytes);
    json.copy(buffer, 0, 0, json.length);
    return buffer;
  }

  private recycle(buffer: Buffer): void {
    if (this.payloadPool.length < this.window + 2) this.payloadPool.push(buffer);
  }

  /** A batch was acknowledged: recorded in the outbox now (ackFlushMs 0) or soon. */
  private addAck(range: SeqRange): void {
    const flushMs = this.options.ackFlushMs ?? 1_000;
    if (this.pendingAcks.length === 0) this.pendingAcksSinceMs = this.clock.monotonicMs();
    this.pendingAcks.push(range);
    if (flushMs <= 0 || this.clock.monotonicMs() - this.pendingAcksSinceMs >= flushMs) this.flushAcks();
  }

  /**
   * Records every acknowledged batch as delivered, in one transaction: cheap whatever the number
   * of readings (a mark moves, see Outbox.ackRanges).
   */
  private flushAcks(): void {
    if (this.pendingAcks.length === 0) return;
    const taken = mergeRanges(this.pendingAcks);
    this.pendingAcks = [];
    try {
      this.options.outbox.ackRanges(taken);
    } catch (error) {
      // They were delivered: failing to record that only means a resend, which the cloud dedups.
      this.logger.warn({ err: String(error), ranges: taken.length }, "could not record acknowledged readings");
    }
  }

  /** Whether delivered readings' rows are waiting to be removed, and no failure holds that back. */
  private purgeDue(): boolean {
    return this.options.outbox.hasDeliveredRows() && this.clock.monotonicMs() >= this.purgeRetryAtMs;
  }

  /** Removes a chunk of delivered readings' rows (all of them when nothing unsent is stored). */
  private purgeDelivered(): void {
    try {
      this.options.outbox.purgeDelivered(PURGE_CHUNK_READINGS);
    } catch (error) {
      // Delivered already: the rows only take room until the next try (or the disk cap removes them).
      this.purgeRetryAtMs = this.clock.monotonicMs() + PURGE_RETRY_MS;
      this.logger.warn(
        { err: String(error), retryInMs: PURGE_RETRY_MS },
        "could not remove delivered readings; they are not sent again",
      );
    }
  }

  /** Hands the acknowledged ranges not recorded yet to the outbox, which deletes them (onCapReached). */
  private takePendingAcks(): SeqRange[] {
    const taken = mergeRanges(this.pendingAcks);
    this.pendingAcks = [];
    return taken;
  }

  /**
   * Publishes and resolves on the PUBACK; rejects with `uplink.timeout` when none came within
   * ackTimeoutMs, or at once on a hard stop. One watchdog times out every publish in flight
   * (instead of a timer, an AbortController and a listener per publish: a drain settles
   * hundreds of publishes a second).
   */
  private publishAcknowledged(topic: string, bytes: Buffer): Promise<void> {
    const publish = this.options.uplink.publish(topic, bytes, { qos: 1 });
    // A late failure of an abandoned (timed-out) publish must not become an unhandled rejection.
    publish.catch(() => undefined);
    return new Promise<void>((resolve, reject) => {
      const entry: AwaitedAck = {
        deadlineMs: this.clock.monotonicMs() + (this.options.ackTimeoutMs ?? 30_000),
        fail: reject,
      };
      this.awaitingAcks.add(entry);
      publish.then(
        () => {
          if (this.awaitingAcks.delete(entry)) resolve();
        },
        (error: unknown) => {
          if (this.awaitingAcks.delete(entry)) reject(error);
        },
      );
      if (!this.watchingAcks) {
        this.watchingAcks = true;
        void this.watchAcks();
      }
    });
  }

  /** Fails the publishes whose PUBACK is overdue; runs while any publish awaits its PUBACK. */
  private async watchAcks(): Promise<void> {
    const ackTimeoutMs = this.options.ackTimeoutMs ?? 30_000;
    for (;;) {
      // After stop() nothing may keep waiting (or spin on the aborted wake signal).
      const stopped = this.hardStop.signal.aborted || this.watchdogWake.signal.aborted;
      const nowMs = this.clock.monotonicMs();
      let nextDeadlineMs = Number.POSITIVE_INFINITY;
      for (const entry of this.awaitingAcks) {
        if (stopped || entry.deadlineMs <= nowMs) {
          this.awaitingAcks.delete(entry);
          entry.fail(
            new EdgemeterError(
              "uplink.timeout",
              stopped ? "stopped before the PUBACK arrived" : `no PUBACK within ${ackTimeoutMs} ms`,
              { retryable: true },
            ),
          );
        } else nextDeadlineMs = Math.min(nextDeadlineMs, entry.deadlineMs);
      }
      // Checked and cleared in one synchronous step: a publish made after this starts a new watchdog.
      if (this.awaitingAcks.size === 0) {
        this.watchingAcks = false;
        return;
      }
      await this.clock.sleep(nextDeadlineMs - nowMs, this.watchdogWake.signal);
    }
  }

  /** Waits ACK_IDLE_DELAY_MS; false when woken early (something to send) or stopping. */
  private async pausedForIdleDelete(): Promise<boolean> {
    if (!this.idleWait.signal.aborted) await this.clock.sleep(ACK_IDLE_DELAY_MS, this.idleWait.signal);
    if (!this.idleWait.signal.aborted) return !this.stopping;
    this.idleWait = new AbortController();
    return false;
  }

  private async waitIdle(): Promise<void> {
    // Idle: the drain is over, give the pool's memory back.
    this.payloadPool = [];
    // A wake() that arrived while we were busy (an append during a publish) counts: look again now.
    if (!this.idleWait.signal.aborted) await this.clock.sleep(this.options.idleFlushMs, this.idleWait.signal);
    if (this.idleWait.signal.aborted) this.idleWait = new AbortController();
  }
}

const SEQS_PLACEHOLDER = "{seqs}";

/**
 * The TelemetryPayload envelope (`{"v":1,"gatewayId":…,"batchId":…,"sentAt":…,"readings":[…]}`)
 * as a frame for Outbox.nextRawBatchAfter. The batchId `s<first>-<last>` is derived from the
 * seqs, so a resent batch carries the same id in broker and cloud logs.
 */
export function telemetryFrame(gatewayId: string, sentAt: string): BatchFrame {
  const envelope = {
    v: WIRE_VERSION,
    gatewayId,
    batchId: `s${SEQS_PLACEHOLDER}`,
    sentAt,
  } satisfies Omit<TelemetryPayload, "readings">;
  return { prefix: `${JSON.stringify(envelope).slice(0, -1)},"readings":`, suffix: "}", placeholder: SEQS_PLACEHOLDER };
}

/**
 * Acknowledged ranges sorted and joined where they touch (consecutive batches), so a drain's
 * acknowledgements delete as one range each: PUBACKs of a window may arrive in any order.
 */
export function mergeRanges(ranges: readonly SeqRange[]): SeqRange[] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first);
  const merged: SeqRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && range.first <= last.last + 1) last.last = Math.max(last.last, range.last);
    else merged.push({ first: range.first, last: range.last });
  }
  return merged;
}
