import {
  EdgemeterError,
  type EventsPayload,
  isEdgemeterError,
  MAX_PAYLOAD_BYTES,
  type Reading,
  type TelemetryPayload,
  topicFor,
  WIRE_VERSION,
} from "@edgemeter/shared";
import type { Logger } from "pino";
import { RepeatedFailure } from "../logging/repeatedFailure.js";
import type { Outbox } from "../outbox/outbox.js";
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
   * Acknowledged readings are deleted in one transaction once this many have gathered (or when
   * the forwarder idles, fails or stops), not one transaction per batch: each commit is an fsync
   * (synchronous=FULL), and a lost delete only means a resend the cloud dedups. Default 5000; 0
   * deletes at each PUBACK.
   */
  ackCoalesceReadings?: number;
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
  private unsubscribes: Array<() => void> = [];
  private readonly counters: ForwarderStats = {
    publishedBatches: 0,
    publishedReadings: 0,
    failedBatches: 0,
    rejectedBatches: 0,
    publishedEvents: 0,
  };
  private readonly eventsTopic: string;
  private readonly window: number;
  private pendingAcks: number[] = [];

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
      this.options.outbox.onAppend(() => this.wake()),
      this.options.uplink.on("state", () => this.wake()),
    ];
    this.running = this.loop().catch((error: unknown) => {
      this.logger.fatal({ err: error }, "forwarder stopped on an unexpected error");
    });
  }

  /** Ends an idle wait: there may be something to send, or the connection came up. */
  wake(): void {
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
    const timer = setTimeout(() => this.hardStop.abort(), deadlineMs);
    try {
      await this.running;
    } finally {
      clearTimeout(timer);
    }
  }

  private async loop(): Promise<void> {
    let failures = 0;
    /** Highest seq handed to the uplink and not known to have failed: the window continues after it. */
    let queuedUpToSeq = -1;
    const inFlight = new Set<Promise<BatchOutcome>>();
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
        const batch = this.options.outbox.nextRawBatchAfter(
          queuedUpToSeq,
          { maxReadings: this.options.maxBatchReadings, maxBytes: this.maxPayloadBytes - ENVELOPE_RESERVE_BYTES },
          this.options.hold,
        );
        const seqs = batch.seqs;
        const first = seqs[0];
        const last = seqs.at(-1);
        if (first === undefined || last === undefined) break;
        queuedUpToSeq = last;
        // Derived from the seqs, so a resent batch carries the same id in broker and cloud logs.
        const batchId = `s${first}-${last}`;
        // The TelemetryPayload envelope around the readings' JSON as stored: no parse and
        // re-serialise per reading on the drain path (the wire schema is checked in the tests).
        const envelope = {
          v: WIRE_VERSION,
          gatewayId: this.options.gatewayId,
          batchId,
          sentAt: new Date(this.clock.nowMs()).toISOString(),
        } satisfies Omit<TelemetryPayload, "readings">;
        const bytes = Buffer.from(`${JSON.stringify(envelope).slice(0, -1)},"readings":${batch.json}}`);
        const outcome: Promise<BatchOutcome> = this.publishAcknowledged(this.topic, bytes).then(
          () => {
            // Only now, with the PUBACK in hand, may the outbox forget these readings.
            this.pendingAcks.push(...seqs);
            if (this.pendingAcks.length >= (this.options.ackCoalesceReadings ?? 5_000)) this.flushAcks();
            this.counters.publishedBatches++;
            this.counters.publishedReadings += seqs.length;
            this.logger.debug({ batchId, readings: seqs.length, bytes: bytes.length }, "batch acknowledged");
            return { ok: true as const, promise: outcome };
          },
          (error: unknown) => ({ ok: false as const, error, batchId, readings: seqs.length, promise: outcome }),
        );
        inFlight.add(outcome);
      }
      if (inFlight.size === 0) {
        this.flushAcks();
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
      this.flushAcks(); // before starting over from the oldest unsent reading
      queuedUpToSeq = -1;
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

  /** Deletes the acknowledged readings gathered so far, in one transaction. */
  private flushAcks(): void {
    if (this.pendingAcks.length === 0) return;
    const seqs = this.pendingAcks;
    this.pendingAcks = [];
    try {
      this.options.outbox.ack(seqs);
    } catch (error) {
      // They were delivered: failing to delete them only means a resend, which the cloud dedups.
      this.logger.warn({ err: String(error), readings: seqs.length }, "could not delete acknowledged readings");
    }
  }

  private async publishAcknowledged(topic: string, bytes: Buffer): Promise<void> {
    const ackTimeoutMs = this.options.ackTimeoutMs ?? 30_000;
    const giveUp = new AbortController();
    const abortOnHardStop = () => giveUp.abort();
    this.hardStop.signal.addEventListener("abort", abortOnHardStop, { once: true });
    const publish = this.options.uplink.publish(topic, bytes, { qos: 1 });
    try {
      await Promise.race([
        publish,
        this.clock.sleep(ackTimeoutMs, giveUp.signal).then(() => {
          throw new EdgemeterError(
            "uplink.timeout",
            this.hardStop.signal.aborted ? "stopped before the PUBACK arrived" : `no PUBACK within ${ackTimeoutMs} ms`,
            { retryable: true },
          );
        }),
      ]);
    } finally {
      giveUp.abort();
      this.hardStop.signal.removeEventListener("abort", abortOnHardStop);
      // A late failure of an abandoned publish must not become an unhandled rejection.
      publish.catch(() => undefined);
    }
  }

  private async waitIdle(): Promise<void> {
    // A wake() that arrived while we were busy (an append during a publish) counts: look again now.
    if (!this.idleWait.signal.aborted) await this.clock.sleep(this.options.idleFlushMs, this.idleWait.signal);
    if (this.idleWait.signal.aborted) this.idleWait = new AbortController();
  }
}
