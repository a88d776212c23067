import type { Reading } from "@edgemeter/shared";
import type Database from "better-sqlite3";
import type { BatchFrame, BatchLimits, RawOutboxBatch } from "./outbox.js";

/**
 * In the stored JSON of a reading taken before the clock was synchronised: every stored reading
 * is `JSON.stringify` of a Reading (append, restamp), so this finds them all; a false match (a
 * meter id containing it) only costs a parse.
 */
const UNSYNCED_MARK = '"clock":"unsynced"';
/** The first guess aims at this share of the byte limit: batches 2 % smaller, one query per batch. */
const GUESS_FILL = 0.98;

export const EMPTY_RAW_BATCH: RawOutboxBatch = {
  count: 0,
  firstSeq: -1,
  lastSeq: -1,
  json: Buffer.alloc(0),
  bytes: 0,
};
export const NO_FRAME: BatchFrame = { prefix: "", suffix: "", placeholder: "{seqs}" };

/**
 * Reads the outbox's next batch as bytes (Outbox.nextRawBatchAfter) on one SQLite connection:
 * the outbox's own. Reads only; `afterSeq` is never below the outbox's delivered mark.
 */
export class RawBatchReader {
  private readonly nextAfter: Database.Statement<[number], { seq: number; bytes: number }>;
  private readonly seqAtOffset: Database.Statement<[number, number], number>;
  private readonly anyUnsynced: Database.Statement<[number], number>;
  private readonly rangeJoined: Database.Statement<
    [{ first: number; last: number; prefix: string; suffix: string }],
    Buffer | null
  >;
  private readonly sizesAfter: Database.Statement<[number, number], number>;
  private readonly joinedAfter: Database.Statement<
    [{ after: number; limit: number; prefix: string; placeholder: string; suffix: string }],
    { n: number; first: number; last: number; bytes: number; unsynced: number; json: Buffer }
  >;
  private readonly after: Database.Statement<[number, number], { seq: number; reading: string }>;

  constructor(db: Database.Database) {
    this.nextAfter = db.prepare("SELECT seq, bytes FROM outbox WHERE seq > ? ORDER BY seq LIMIT 1");
    this.seqAtOffset = db
      .prepare<[number, number], number>("SELECT seq FROM outbox WHERE seq > ? ORDER BY seq LIMIT 1 OFFSET ?")
      .pluck(true);
    // The partial index outbox_unsynced holds the unsynced readings only: its first entry after
    // the batch's start, or none (INDEXED BY: never a scan of the backlog for the seq condition).
    this.anyUnsynced = db
      .prepare<[number], number>(
        "SELECT 1 FROM outbox INDEXED BY outbox_unsynced WHERE boot_id IS NOT NULL AND seq > ? LIMIT 1",
      )
      .pluck(true);
    this.rangeJoined = db
      .prepare<[{ first: number; last: number; prefix: string; suffix: string }], Buffer | null>(
        `SELECT CAST(@prefix || '[' || group_concat(reading, ',') || ']' || @suffix AS BLOB)
         FROM outbox WHERE seq BETWEEN @first AND @last`,
      )
      .pluck(true);
    this.sizesAfter = db
      .prepare<[number, number], number>("SELECT bytes FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?")
      .pluck(true);
    // One row for a whole batch: SQLite joins the stored JSON itself and hands it over as bytes
    // (a BLOB becomes a Buffer), so no JavaScript string is made per reading. SQLite feeds the
    // aggregate the rows of the ORDER BY subquery in that order (a co-routine); an ORDER BY
    // inside group_concat would say so explicitly but sorts every batch again (+60 % on the
    // drain's SQLite time). The order within a batch changes nothing in the cloud (it lands by
    // key); the forwarder tests check that readings do arrive in seq order. `unsynced`: 1 when
    // the batch holds a reading taken before the clock was synchronised (boot_id set). The
    // frame (BatchFrame) goes into the same buffer: a second 120 KB copy per batch to add the
    // envelope measurably loaded the garbage collector during a drain. `bytes`: of the array.
    this.joinedAfter = db.prepare(
      `SELECT count(*) AS n, min(seq) AS first, max(seq) AS last, coalesce(sum(bytes), 0) + count(*) + 1 AS bytes,
              coalesce(max(boot_id IS NOT NULL), 0) AS unsynced,
              CAST(replace(@prefix, @placeholder, min(seq) || '-' || max(seq)) || '[' || group_concat(reading, ',') || ']'
                   || @suffix AS BLOB) AS json
       FROM (SELECT seq, reading, bytes, boot_id FROM outbox WHERE seq > @after ORDER BY seq LIMIT @limit)`,
    );
    this.after = db.prepare("SELECT seq, reading FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?");
  }

  /** See Outbox.nextRawBatchAfter. */
  read(
    afterSeq: number,
    limits: BatchLimits,
    hold: ((reading: Reading) => boolean) | undefined,
    frame: BatchFrame = NO_FRAME,
  ): RawOutboxBatch {
    // The drain's hot path (issue 4 benchmark). How many readings fit is first guessed from the
    // next reading's size, with a margin (a gateway's readings differ by a few digits), and
    // checked against the sum of the stored sizes: a guess too high costs a second, exact pass
    // over the sizes; one too low, a batch a bit smaller.
    const maxReadings = Math.max(1, limits.maxReadings);
    const next = this.nextAfter.get(afterSeq);
    if (next === undefined) return EMPTY_RAW_BATCH;
    const guess = Math.floor((GUESS_FILL * (limits.maxBytes - 1)) / (next.bytes + 1));
    const limit = Math.max(1, Math.min(maxReadings, guess));
    // The common case of a drain: the next `limit` readings are consecutive seqs (nothing thinned
    // or acknowledged out of order in between) and none was taken unsynced. Then a plain range
    // read joins them, without the per-reading bookkeeping below (a third less SQLite time).
    if (limit > 1) {
      const lastSeq = this.seqAtOffset.get(afterSeq, limit - 1);
      if (lastSeq === next.seq + limit - 1 && this.anyUnsynced.get(afterSeq) === undefined) {
        const prefix = framePrefix(frame, next.seq, lastSeq);
        const json = this.rangeJoined.get({ first: next.seq, last: lastSeq, prefix, suffix: frame.suffix });
        // The byte limit against what was actually joined (the stored sizes only guided the guess).
        const arrayBytes = (json?.length ?? 0) - Buffer.byteLength(prefix) - Buffer.byteLength(frame.suffix);
        if (json !== null && json !== undefined && arrayBytes <= limits.maxBytes) {
          return { count: limit, firstSeq: next.seq, lastSeq, json, bytes: json.length };
        }
      }
    }
    const query = { after: afterSeq, limit, ...frame };
    let joined = this.joinedAfter.get(query);
    if (joined !== undefined && joined.n > 1 && joined.bytes > limits.maxBytes) {
      query.limit = this.readingsThatFit(afterSeq, maxReadings, limits.maxBytes);
      joined = this.joinedAfter.get(query);
    }
    // A stored size that disagrees with its reading would break the byte limit: never trust it
    // then (the reading-by-reading path measures). Cannot happen unless the file was edited.
    if (
      joined === undefined ||
      joined.n === 0 ||
      joined.json.length !== joined.bytes + frameBytes(frame, joined.first, joined.last)
    ) {
      return this.readByReading(afterSeq, limits, hold, frame);
    }
    // A reading taken before the clock was synchronised may have to wait (hold): decide reading
    // by reading, parsing just those. Rare: only right after a boot without network time.
    if (hold !== undefined && joined.unsynced > 0) return this.readByReading(afterSeq, limits, hold, frame);
    return {
      count: joined.n,
      firstSeq: joined.first,
      lastSeq: joined.last,
      json: joined.json,
      bytes: joined.json.length,
    };
  }

  /** How many of the readings after `afterSeq` fit in `maxBytes` as a JSON array (at least one). */
  private readingsThatFit(afterSeq: number, maxReadings: number, maxBytes: number): number {
    let count = 0;
    let bytes = 2; // "[" and "]"
    for (const size of this.sizesAfter.all(afterSeq, maxReadings)) {
      const added = size + (count > 0 ? 1 : 0); // the comma
      if (count > 0 && bytes + added > maxBytes) break;
      bytes += added;
      count++;
    }
    return Math.max(1, count);
  }

  /** `read` reading by reading, measuring each, cut at the first reading `hold` keeps back. */
  private readByReading(
    afterSeq: number,
    limits: BatchLimits,
    hold: ((reading: Reading) => boolean) | undefined,
    frame: BatchFrame,
  ): RawOutboxBatch {
    const parts: string[] = [];
    let firstSeq = -1;
    let lastSeq = -1;
    let bytes = 2;
    for (const row of this.after.iterate(afterSeq, Math.max(1, limits.maxReadings))) {
      const added = Buffer.byteLength(row.reading) + (parts.length > 0 ? 1 : 0);
      if (parts.length > 0 && bytes + added > limits.maxBytes) break;
      if (hold !== undefined && row.reading.includes(UNSYNCED_MARK) && hold(JSON.parse(row.reading) as Reading)) break;
      if (parts.length === 0) firstSeq = row.seq;
      lastSeq = row.seq;
      parts.push(row.reading);
      bytes += added;
    }
    if (parts.length === 0) return EMPTY_RAW_BATCH;
    const json = Buffer.from(`${framePrefix(frame, firstSeq, lastSeq)}[${parts.join(",")}]${frame.suffix}`);
    return { count: parts.length, firstSeq, lastSeq, json, bytes: json.length };
  }
}

/** The frame's prefix for the batch `first`..`last` (as SQLite's replace() makes it). */
function framePrefix(frame: BatchFrame, first: number, last: number): string {
  return frame.placeholder === "" ? frame.prefix : frame.prefix.replaceAll(frame.placeholder, `${first}-${last}`);
}

function frameBytes(frame: BatchFrame, first: number, last: number): number {
  if (frame.prefix === "" && frame.suffix === "") return 0;
  return Buffer.byteLength(framePrefix(frame, first, last)) + Buffer.byteLength(frame.suffix);
}
