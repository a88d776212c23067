import type { MeterEvent, Reading } from "@edgemeter/shared";

/** A reading as the bus scheduler produces it: everything but the seq the outbox assigns. */
export type NewReading = Omit<Reading, "seq">;

/**
 * Where an unsynced reading sits on the boot's monotonic clock, so it can be re-stamped once
 * the wall clock is right. `monotonicMsOf` returns boot-relative milliseconds for a reading.
 */
export interface UnsyncedStamp {
  bootId: string;
  monotonicMsOf: (reading: NewReading) => number;
}

/** Thinning and dropping under the disk cap, and the cap itself (DESIGN "Storage"). */
export interface OutboxStats {
  /** Unsent readings. */
  depth: number;
  oldestTs: string | null;
  /** Bytes of live database pages (page_count - freelist_count) * page_size. */
  usedBytes: number;
  /** The configured cap; null = none. */
  capBytes: number | null;
  /** Interval readings deleted unsent to make room, keeping one energy reading per meter and 15 minutes. Since the outbox was created. */
  thinnedReadings: number;
  /** Readings deleted unsent after thinning could not make room. Since the outbox was created. */
  droppedReadings: number;
  /** Fault events not yet acknowledged by the broker. */
  pendingEvents: number;
}

export interface BatchLimits {
  /** Most readings in one batch (>= 1). */
  maxReadings: number;
  /**
   * Most bytes the batch's readings may take as a JSON array (UTF-8), so the publisher can
   * add its envelope and stay under the broker's limit (MAX_PAYLOAD_BYTES).
   */
  maxBytes: number;
}

/** The readings with seq in [first, last], both included (a batch's readings, for deletion after its ack). */
export interface SeqRange {
  first: number;
  last: number;
}

/**
 * Text around a raw batch's JSON array, joined to it where the batch is read (one buffer per
 * batch, no copy to add an envelope). `placeholder`, where it occurs in `prefix`, becomes the
 * batch's seq range `first-last` (a batch id derived from its seqs).
 */
export interface BatchFrame {
  prefix: string;
  suffix: string;
  /** Non-empty; replaced in `prefix` only. */
  placeholder: string;
}

export interface RawOutboxBatch {
  /** Number of readings; 0 when nothing is due (then the seqs are -1 and `json` is empty). */
  count: number;
  /**
   * Seqs of the first and last reading. A batch is the next `count` stored readings in seq
   * order, so every reading stored with a seq in [firstSeq, lastSeq] is in it: acknowledging
   * the batch may delete the whole range (`ackRanges`). No reading can join the range later:
   * seqs are assigned rising and never reused.
   */
  firstSeq: number;
  lastSeq: number;
  /**
   * `[reading,reading,...]`: the readings' JSON exactly as stored, joined, as UTF-8 bytes;
   * inside the frame when one was given (`prefix[...]suffix`).
   */
  json: Buffer;
  /** `json.length`. BatchLimits.maxBytes bounds the array alone, without the frame. */
  bytes: number;
}

export interface OutboxBatch {
  /** Oldest unsent readings, in seq order. Empty when the outbox is empty. */
  readings: Reading[];
  /** UTF-8 length of `JSON.stringify(readings)`. */
  bytes: number;
}

/**
 * The gateway's durable store of unsent readings: the source of truth (DESIGN "Storage").
 * A reading is written here before anything else happens to it and leaves only when
 * `ack` is called after the broker acknowledged its batch. Synchronous because the one
 * adapter (SQLite via better-sqlite3) is; calls are short and bounded.
 */
export interface Outbox {
  /**
   * Stores readings atomically (all or none), assigning each a `seq` that rises
   * monotonically per gateway, survives restarts and is never reused, even after deletes.
   * @returns the stored readings with their seq, in the given order.
   * @throws EdgemeterError `storage.full` (disk full) or `storage.write`, both retryable, when the
   *   database cannot be written.
   */
  append(readings: readonly NewReading[], unsynced?: UnsyncedStamp): Reading[];
  /**
   * Re-stamps the readings taken unsynced during boot `bootId` (DESIGN "Time"): ts = their
   * boot-relative monotonic time + `wallMinusMonotonicMs`, clock "synced". seq is untouched.
   * @returns how many readings were re-stamped.
   */
  restamp(bootId: string, wallMinusMonotonicMs: number): number;
  /**
   * The oldest unsent readings within `limits`. A batch holds at least one reading when the
   * outbox is not empty, even if that one reading alone exceeds `maxBytes` (a reading is
   * bounded by the wire schema far below the broker limit, so this cannot stall the queue).
   * Does not remove anything: calling twice returns the same batch.
   */
  nextBatch(limits: BatchLimits): OutboxBatch;
  /**
   * Like nextBatch, but only readings with seq > `afterSeq` (for a window of batches in flight)
   * and held back at the first reading `hold` returns true for (an unsynced reading waiting to
   * be re-stamped), so readings leave in seq order.
   */
  nextBatchAfter(afterSeq: number, limits: BatchLimits, hold?: (reading: Reading) => boolean): OutboxBatch;
  /**
   * nextBatchAfter for the publisher's hot path: the readings as the UTF-8 bytes of a JSON
   * array, exactly as stored (no parse and re-serialise per reading), with their seq range.
   */
  nextRawBatchAfter(
    afterSeq: number,
    limits: BatchLimits,
    hold?: (reading: Reading) => boolean,
    frame?: BatchFrame,
  ): RawOutboxBatch;
  /** Stores fault events; an event already stored (same eventId and state) is ignored. */
  appendEvents(events: readonly MeterEvent[]): void;
  /** Up to `limit` unsent events, oldest first, with the row ids `ackEvents` takes. */
  nextEvents(limit: number): Array<{ rowId: number; event: MeterEvent }>;
  /** Marks events as sent; they stay (the newest few hundred) for the status page. */
  ackEvents(rowIds: readonly number[]): void;
  /** The newest events, newest first, sent or not. */
  recentEvents(limit: number): MeterEvent[];
  /** Depth, disk use and the thinned/dropped counters, for status and logs. */
  stats(): OutboxStats;
  /** Deletes the readings with these seqs (unknown seqs are ignored). @returns how many were deleted. */
  ack(seqs: readonly number[]): number;
  /**
   * The readings with a seq in one of the ranges (acknowledged batches, see RawOutboxBatch) are
   * delivered, in one transaction that survives a crash: never unsent or sent again. A range
   * that continues the delivered ones moves a mark (every seq up to it is delivered) and its
   * rows stay until `purgeDelivered`, or go at once when nothing unsent is left (the table is
   * cleared whole); a range acknowledged ahead of an older unsent reading is deleted at once.
   * Costs a few primary-key seeks and one row written, however many readings the ranges hold.
   */
  ackRanges(ranges: readonly SeqRange[]): void;
  /** Whether delivered readings' rows are still stored (see ackRanges, purgeDelivered). */
  hasDeliveredRows(): boolean;
  /**
   * Removes delivered readings' rows: all at once when nothing unsent is stored, else the oldest
   * `maxReadings`. Work for an idle moment: it rewrites the pages those rows are on.
   * @returns how many rows were removed.
   */
  purgeDelivered(maxReadings: number): number;
  /**
   * The disk-cap counters alone (see OutboxStats), without the queries `stats()` makes: cheap
   * enough to poll. They survive restarts.
   */
  diskCapCounts(): { thinnedReadings: number; droppedReadings: number };
  /** Number of unsent readings. */
  depth(): number;
  /** `ts` of the oldest unsent reading (lowest seq), or null when empty. */
  oldestTs(): string | null;
  /** Registers a listener called after each successful append; returns an unsubscribe function. */
  onAppend(listener: () => void): () => void;
  /**
   * Registers where readings acknowledged but not handed to `ackRanges` yet are found (the
   * forwarder gathers acks: `forwarder.ackFlushMs`). When an append reaches the disk cap, the
   * delivered readings' rows and those are deleted first, in the append's transaction, neither
   * thinned nor dropped nor counted (they were delivered); thinning starts only if that did not
   * make room. `takeAcknowledged` hands them
   * over (its owner forgets them: should the append roll back, they are sent again, which the
   * cloud dedups). Returns an unsubscribe function.
   */
  onCapReached(takeAcknowledged: () => readonly SeqRange[]): () => void;
  /** Closes the store; later calls throw. Idempotent. */
  close(): void;
}
