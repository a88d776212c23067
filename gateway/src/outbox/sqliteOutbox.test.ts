import path from "node:path";
import type { Reading } from "@edgemeter/shared";
import { tempDir } from "@edgemeter/shared/testing";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { outboxStatusFacts } from "../uplink/statusReport.js";
import type { BatchFrame, NewReading } from "./outbox.js";
import { SqliteOutbox, THIN_BUCKET_MS } from "./sqliteOutbox.js";

function reading(meterId: string, second: number): NewReading {
  return {
    meterId,
    ts: new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString(),
    clock: "synced",
    values: { voltageL1V: 230 + second / 10, importEnergyKwh: 1000 + second },
  };
}

describe("SqliteOutbox (real SQLite file)", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });
  function open(dir?: string): { outbox: SqliteOutbox; file: string } {
    let base = dir;
    if (base === undefined) {
      const temp = tempDir("outbox");
      cleanups.push(temp.remove);
      base = temp.dir;
    }
    const file = path.join(base, "nested", "outbox.sqlite");
    const outbox = new SqliteOutbox({ file });
    cleanups.unshift(() => outbox.close());
    return { outbox, file };
  }

  it("runs in WAL mode", () => {
    const { outbox } = open();
    expect(outbox.journalMode()).toBe("wal");
  });

  it("assigns seq from 0 and continues after close/reopen and after deletes, never reusing one", () => {
    const { dir, remove } = tempDir("outbox");
    cleanups.push(remove);
    const first = open(dir).outbox;
    expect(first.append([reading("m1", 0), reading("m2", 0)]).map((r) => r.seq)).toEqual([0, 1]);
    expect(first.append([reading("m1", 1)]).map((r) => r.seq)).toEqual([2]);
    // Ack everything: the table is empty, yet the next seq must not restart at 0 or reuse 2.
    expect(first.ack([0, 1, 2])).toBe(3);
    expect(first.depth()).toBe(0);
    first.close();

    const second = open(dir).outbox;
    expect(second.append([reading("m1", 2)]).map((r) => r.seq)).toEqual([3]);
    expect(second.nextBatch({ maxReadings: 10, maxBytes: 100_000 }).readings).toEqual([
      { ...reading("m1", 2), seq: 3 },
    ]);
  });

  it("deletes only the acked readings and ignores unknown seqs", () => {
    const { outbox } = open();
    outbox.append([reading("m1", 0), reading("m1", 1), reading("m1", 2), reading("m1", 3)]);
    expect(outbox.ack([1, 3, 99])).toBe(2);
    expect(outbox.depth()).toBe(2);
    expect(outbox.nextBatch({ maxReadings: 10, maxBytes: 100_000 }).readings.map((r) => r.seq)).toEqual([0, 2]);
    expect(outbox.oldestTs()).toBe(reading("m1", 0).ts);
    outbox.ack([0]);
    expect(outbox.oldestTs()).toBe(reading("m1", 2).ts);
  });

  it("returns the oldest readings in seq order within maxReadings and maxBytes, without removing them", () => {
    const { outbox } = open();
    outbox.append(Array.from({ length: 50 }, (_, i) => reading(`m${i % 3}`, i)));
    const byCount = outbox.nextBatch({ maxReadings: 7, maxBytes: 1_000_000 });
    expect(byCount.readings.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6]);

    const maxBytes = 1_000;
    const byBytes = outbox.nextBatch({ maxReadings: 500, maxBytes });
    const json = JSON.stringify(byBytes.readings);
    expect(Buffer.byteLength(json)).toBe(byBytes.bytes);
    expect(byBytes.bytes).toBeLessThanOrEqual(maxBytes);
    // It is the largest prefix that fits: one more reading would exceed the limit.
    const oneMore = outbox.nextBatch({ maxReadings: byBytes.readings.length + 1, maxBytes: 1_000_000 });
    expect(Buffer.byteLength(JSON.stringify(oneMore.readings))).toBeGreaterThan(maxBytes);
    expect(byBytes.readings[0]?.seq).toBe(0);
    expect(outbox.depth()).toBe(50);
  });

  it("keeps errors, leaves empty errors out, and returns an empty batch when empty", () => {
    const { outbox } = open();
    expect(outbox.nextBatch({ maxReadings: 10, maxBytes: 1000 })).toEqual({ readings: [], bytes: 0 });
    expect(outbox.oldestTs()).toBeNull();
    const withErrors = { ...reading("m1", 0), errors: [{ code: "modbus.timeout", message: "no answer" }] };
    outbox.append([withErrors, { ...reading("m1", 1), errors: [] }]);
    const [a, b] = outbox.nextBatch({ maxReadings: 10, maxBytes: 100_000 }).readings;
    expect(a?.errors).toEqual(withErrors.errors);
    expect(b && "errors" in b).toBe(false);
  });

  it("notifies append listeners after the write is stored", () => {
    const { outbox } = open();
    const depths: number[] = [];
    const unsubscribe = outbox.onAppend(() => depths.push(outbox.depth()));
    outbox.append([reading("m1", 0)]);
    unsubscribe();
    outbox.append([reading("m1", 1)]);
    expect(depths).toEqual([1]);
  });

  describe("disk cap", () => {
    /** One reading per meter every 10 s, `hours` long, for 2 meters: 720 readings per hour. */
    function outage(hours: number): NewReading[] {
      const out: NewReading[] = [];
      for (let s = 0; s < hours * 3_600; s += 10) {
        for (const meterId of ["meter-a", "meter-b"]) {
          out.push({
            meterId,
            ts: new Date(Date.UTC(2026, 0, 1) + s * 1_000).toISOString(),
            clock: "synced",
            values: { voltageL1V: 230, currentL1A: 5, activePowerW: 1_150, importEnergyKwh: 1_000 + s / 3_600 },
          });
        }
      }
      return out;
    }

    it("thins old detail to one energy reading per meter and 15 minutes before dropping, and counts it", () => {
      const temp = tempDir("outbox-cap");
      cleanups.push(temp.remove);
      const file = path.join(temp.dir, "outbox.sqlite");
      const capBytes = 400 * 1_024;
      const outbox = new SqliteOutbox({ file, capBytes });
      cleanups.unshift(() => outbox.close());
      const all = outage(6); // 4,320 readings, ~1 MB: well over the cap
      for (let i = 0; i < all.length; i += 20) outbox.append(all.slice(i, i + 20)); // a poll round at a time
      const stats = outbox.stats();
      expect(stats.usedBytes).toBeLessThanOrEqual(capBytes);
      expect(stats.thinnedReadings).toBeGreaterThan(0);
      expect(stats.thinnedReadings + stats.droppedReadings + stats.depth).toBe(all.length);
      // Nothing was dropped: thinning alone made room, so every 15-minute bucket of every meter
      // still has its energy reading, the first one of the bucket.
      expect(stats.droppedReadings).toBe(0);
      const left: Reading[] = [];
      for (;;) {
        const batch = outbox.nextBatchAfter(left.at(-1)?.seq ?? -1, { maxReadings: 1_000, maxBytes: 1e9 });
        if (batch.readings.length === 0) break;
        left.push(...batch.readings);
      }
      for (const meterId of ["meter-a", "meter-b"]) {
        const tsOfMeter = new Set(left.filter((r) => r.meterId === meterId).map((r) => r.ts));
        for (let bucket = 0; bucket < 6 * 4; bucket++) {
          const first = new Date(Date.UTC(2026, 0, 1) + bucket * THIN_BUCKET_MS).toISOString();
          expect(tsOfMeter.has(first), `${meterId} ${first}`).toBe(true);
        }
      }
      // The newest detail is the last to go: the final minutes are complete.
      expect(left.slice(-12).map((r) => r.ts)).toEqual(all.slice(-12).map((r) => r.ts));
      // What the uplink publishes in the retained status (and the status page shows): the same counts.
      const { statusFacts, diskCapCounts } = outboxStatusFacts(outbox);
      expect(diskCapCounts()).toEqual({ thinnedReadings: stats.thinnedReadings, droppedReadings: 0 });
      expect(statusFacts()).toEqual({
        bufferedReadings: stats.depth,
        oldestUnsentTs: all[0]?.ts, // thinning keeps the first energy reading of the oldest bucket
        thinnedReadings: stats.thinnedReadings,
        droppedReadings: 0,
      });
      // Counters survive a restart.
      outbox.close();
      const reopened = new SqliteOutbox({ file, capBytes });
      cleanups.unshift(() => reopened.close());
      expect(reopened.stats()).toMatchObject({ thinnedReadings: stats.thinnedReadings, droppedReadings: 0 });
      expect(reopened.diskCapCounts()).toEqual({ thinnedReadings: stats.thinnedReadings, droppedReadings: 0 });
    });

    it("at the cap, deletes readings acknowledged but not deleted yet first, and counts none of them", () => {
      const temp = tempDir("outbox-cap");
      cleanups.push(temp.remove);
      const capBytes = 400 * 1_024;
      const outbox = new SqliteOutbox({ file: path.join(temp.dir, "outbox.sqlite"), capBytes });
      cleanups.unshift(() => outbox.close());
      // A forwarder that has delivered all but the newest 200 readings and deferred the deletes.
      let newestSeq = -1;
      let handedUpTo = -1;
      let handedOver = 0;
      outbox.onCapReached(() => {
        const last = newestSeq - 200;
        if (last <= handedUpTo) return [];
        const range = { first: handedUpTo + 1, last };
        handedOver += last - handedUpTo;
        handedUpTo = last;
        return [range];
      });
      const all = outage(6); // ~1 MB, 2.5 times the cap
      for (let i = 0; i < all.length; i += 20) {
        newestSeq = outbox.append(all.slice(i, i + 20)).at(-1)?.seq ?? newestSeq;
      }
      const stats = outbox.stats();
      expect(handedOver).toBeGreaterThan(0); // the cap was reached
      expect(stats.usedBytes).toBeLessThanOrEqual(capBytes);
      expect(stats).toMatchObject({ thinnedReadings: 0, droppedReadings: 0 });
      expect(stats.depth).toBe(all.length - handedOver);
      // What is left is every reading after the delivered ones, none thinned.
      const left = outbox.nextBatchAfter(-1, { maxReadings: 10_000, maxBytes: 1e9 }).readings;
      expect(left.map((r) => r.ts)).toEqual(all.slice(handedOver).map((r) => r.ts));
    });

    it("drops the oldest readings, counted, once thinning cannot make room", () => {
      const temp = tempDir("outbox-cap");
      cleanups.push(temp.remove);
      const capBytes = 64 * 1_024;
      const outbox = new SqliteOutbox({ file: path.join(temp.dir, "outbox.sqlite"), capBytes });
      cleanups.unshift(() => outbox.close());
      // One reading per 15 minutes: nothing to thin, so only dropping can make room.
      const sparse: NewReading[] = Array.from({ length: 2_000 }, (_, i) => ({
        meterId: "meter-a",
        ts: new Date(Date.UTC(2026, 0, 1) + i * THIN_BUCKET_MS).toISOString(),
        clock: "synced",
        values: { voltageL1V: 230, importEnergyKwh: i },
      }));
      for (let i = 0; i < sparse.length; i += 10) outbox.append(sparse.slice(i, i + 10));
      const stats = outbox.stats();
      expect(stats.usedBytes).toBeLessThanOrEqual(capBytes);
      expect(stats.thinnedReadings).toBe(0);
      expect(stats.droppedReadings).toBeGreaterThan(0);
      expect(stats.droppedReadings + stats.depth).toBe(sparse.length);
      // The oldest went: what is left is the newest, contiguous.
      expect(outbox.oldestTs()).toBe(sparse[stats.droppedReadings]?.ts);
      expect(outbox.diskCapCounts()).toEqual({ thinnedReadings: 0, droppedReadings: stats.droppedReadings });
    });
  });

  describe("delivered mark (ackRanges, purgeDelivered)", () => {
    /** Rows in the file, delivered or not, read through a second connection as an operator would. */
    function storedRows(file: string): number {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare<[], number>("SELECT count(*) FROM outbox").pluck(true).get() ?? -1;
      } finally {
        db.close();
      }
    }

    it("marks acknowledged ranges delivered without deleting them, across a reopen, and purges them oldest first", () => {
      const { dir, remove } = tempDir("outbox");
      cleanups.push(remove);
      const { outbox, file } = open(dir);
      const stored = outbox.append(Array.from({ length: 100 }, (_, i) => reading("m1", i)));
      outbox.ackRanges([{ first: 0, last: 29 }]);
      outbox.ackRanges([{ first: 30, last: 59 }]);
      outbox.ackRanges([{ first: 0, last: 9 }]); // delivered already: changes nothing
      expect(outbox.depth()).toBe(40);
      expect(outbox.oldestTs()).toBe(stored[60]?.ts);
      expect(outbox.hasDeliveredRows()).toBe(true);
      expect(storedRows(file)).toBe(100); // the rows stay until purged
      // Never sent again, whichever read asks: from the start, or after a seq below the mark.
      expect(outbox.nextBatch({ maxReadings: 1, maxBytes: 1e6 }).readings[0]?.seq).toBe(60);
      expect(outbox.nextBatchAfter(5, { maxReadings: 1, maxBytes: 1e6 }).readings[0]?.seq).toBe(60);
      expect(outbox.nextRawBatchAfter(-1, { maxReadings: 1, maxBytes: 1e6 }).firstSeq).toBe(60);
      outbox.close();

      // A restart (or a power cut after the commit) keeps the mark: nothing delivered goes again.
      const reopened = open(dir).outbox;
      expect(reopened.depth()).toBe(40);
      expect(reopened.hasDeliveredRows()).toBe(true);
      expect(reopened.nextRawBatchAfter(-1, { maxReadings: 1, maxBytes: 1e6 }).firstSeq).toBe(60);
      // Unsent readings are left: a chunk of the oldest rows at a time.
      expect(reopened.purgeDelivered(25)).toBe(25);
      expect(storedRows(file)).toBe(75);
      expect(reopened.purgeDelivered(1_000)).toBe(35);
      expect(reopened.hasDeliveredRows()).toBe(false);
      expect(reopened.purgeDelivered(1_000)).toBe(0);
      expect(storedRows(file)).toBe(40);
      expect(reopened.depth()).toBe(40);
    });

    it("clears the table whole once everything stored is delivered, freeing its pages", () => {
      const { outbox, file } = open();
      outbox.append(Array.from({ length: 2_000 }, (_, i) => reading("m1", i)));
      const usedBefore = outbox.usedBytes();
      outbox.ackRanges([{ first: 0, last: 999 }]);
      expect(storedRows(file)).toBe(2_000);
      expect(outbox.depth()).toBe(1_000);
      outbox.ackRanges([{ first: 1_000, last: 1_999 }]);
      expect(storedRows(file)).toBe(0);
      expect(outbox.hasDeliveredRows()).toBe(false);
      expect(outbox.usedBytes()).toBeLessThan(usedBefore / 10);
      // Seqs go on from the counter, not from the (now empty) table.
      expect(outbox.append([reading("m1", 5_000)])[0]?.seq).toBe(2_000);
      expect(outbox.depth()).toBe(1);
    });

    it("deletes a range acknowledged ahead of an older unsent reading at once, then moves the mark past both", () => {
      const { outbox, file } = open();
      outbox.append(Array.from({ length: 40 }, (_, i) => reading("m1", i)));
      // A window after a failure: the second batch acknowledged while the first is still unsent.
      outbox.ackRanges([{ first: 10, last: 19 }]);
      expect(storedRows(file)).toBe(30);
      expect(outbox.hasDeliveredRows()).toBe(false);
      expect(outbox.nextBatch({ maxReadings: 100, maxBytes: 1e6 }).readings.map((r) => r.seq)).toEqual([
        ...Array.from({ length: 10 }, (_, i) => i),
        ...Array.from({ length: 20 }, (_, i) => 20 + i),
      ]);
      // The first batch, then the one after the hole: each continues the delivered ones.
      outbox.ackRanges([{ first: 0, last: 9 }]);
      outbox.ackRanges([{ first: 20, last: 29 }]);
      expect(outbox.depth()).toBe(10);
      expect(storedRows(file)).toBe(30);
      expect(outbox.nextBatch({ maxReadings: 100, maxBytes: 1e6 }).readings[0]?.seq).toBe(30);
    });

    it("at the cap, removes delivered rows first, uncounted", () => {
      const temp = tempDir("outbox-cap");
      cleanups.push(temp.remove);
      const file = path.join(temp.dir, "outbox.sqlite");
      const capBytes = 256 * 1_024;
      const outbox = new SqliteOutbox({ file, capBytes });
      cleanups.unshift(() => outbox.close());
      const row = (i: number) => ({
        ...reading("m1", 0),
        ts: new Date(Date.UTC(2026, 0, 1) + i * 1_000).toISOString(),
      });
      let next = 0;
      const appendRound = () => outbox.append(Array.from({ length: 20 }, () => row(next++)));
      // Fill to ~80 % of the cap, deliver all but the newest 20, keep appending past the cap.
      while (outbox.usedBytes() < capBytes * 0.8) appendRound();
      outbox.ackRanges([{ first: 0, last: next - 21 }]);
      expect(outbox.hasDeliveredRows()).toBe(true);
      const unsentBefore = outbox.depth();
      expect(unsentBefore).toBe(20);
      let appended = 0;
      while (outbox.hasDeliveredRows()) {
        appendRound();
        appended += 20;
        expect(appended, "the cap was never reached").toBeLessThan(10_000);
      }
      expect(outbox.stats()).toMatchObject({ thinnedReadings: 0, droppedReadings: 0, depth: unsentBefore + appended });
      expect(storedRows(file)).toBe(unsentBefore + appended);
      expect(outbox.usedBytes()).toBeLessThanOrEqual(capBytes);
    });
  });

  describe("raw batches (the forwarder's drain path)", () => {
    const frame: BatchFrame = { prefix: '{"batchId":"s{seqs}","readings":', suffix: "}", placeholder: "{seqs}" };
    /** All raw batches after -1, as the forwarder takes them one after the other. */
    function drain(outbox: SqliteOutbox, maxBytes: number, hold?: (r: Reading) => boolean) {
      const batches: Array<{ first: number; last: number; count: number; bytes: number; body: unknown }> = [];
      for (let after = -1; ; ) {
        const batch = outbox.nextRawBatchAfter(after, { maxReadings: 50, maxBytes }, hold, frame);
        if (batch.count === 0) break;
        expect(batch.bytes).toBe(batch.json.length);
        batches.push({
          first: batch.firstSeq,
          last: batch.lastSeq,
          count: batch.count,
          bytes: batch.bytes,
          body: JSON.parse(batch.json.toString()),
        });
        after = batch.lastSeq;
      }
      return batches;
    }

    it("joins the stored JSON of consecutive readings, framed, within the byte limit, in seq order", () => {
      const { outbox } = open();
      const stored = outbox.append(Array.from({ length: 120 }, (_, i) => reading(`m${i % 3}`, i)));
      const maxBytes = 4_000;
      const batches = drain(outbox, maxBytes);
      expect(batches.length).toBeGreaterThan(2);
      const readings = batches.flatMap((b) => (b.body as { readings: Reading[] }).readings);
      expect(readings).toEqual(stored); // every reading once, in seq order, exactly as stored
      for (const b of batches) {
        expect(b.body).toMatchObject({ batchId: `s${b.first}-${b.last}` });
        const array = JSON.stringify((b.body as { readings: Reading[] }).readings);
        expect(Buffer.byteLength(array)).toBeLessThanOrEqual(maxBytes);
        expect((b.body as { readings: Reading[] }).readings).toHaveLength(b.count);
      }
      // Nothing was removed by reading.
      expect(outbox.depth()).toBe(120);
    });

    it("reads the same across holes left by thinning and acknowledged ranges", () => {
      const { outbox } = open();
      const stored = outbox.append(Array.from({ length: 60 }, (_, i) => reading("m1", i)));
      // Holes: a range acknowledged out of order, and single readings gone.
      outbox.ackRanges([{ first: 10, last: 19 }]);
      expect(outbox.ack([25, 31, 32])).toBe(3);
      const left = stored.filter((r) => !(r.seq >= 10 && r.seq <= 19) && ![25, 31, 32].includes(r.seq));
      const batches = drain(outbox, 2_500);
      expect(batches.flatMap((b) => (b.body as { readings: Reading[] }).readings)).toEqual(left);
      // A batch covers every stored reading between its first and last seq: acknowledging it as a range is exact.
      for (const b of batches) {
        expect(left.filter((r) => r.seq >= b.first && r.seq <= b.last)).toHaveLength(b.count);
      }
      expect(outbox.depth()).toBe(left.length);
      outbox.ackRanges(batches.map((b) => ({ first: b.first, last: b.last })));
      expect(outbox.depth()).toBe(0);
    });

    it("stops before an unsynced reading that hold keeps back, and takes it once hold lets it go", () => {
      const { outbox } = open();
      outbox.append([reading("m1", 0), reading("m1", 1)]);
      outbox.append([{ ...reading("m1", 2), clock: "unsynced" }], { bootId: "b", monotonicMsOf: () => 2_000 });
      outbox.append([reading("m1", 3)]);
      let holding = true;
      const hold = (r: Reading) => holding && r.clock === "unsynced";
      expect(drain(outbox, 100_000, hold).map((b) => [b.first, b.last])).toEqual([[0, 1]]);
      holding = false;
      expect(drain(outbox, 100_000, hold).map((b) => [b.first, b.last])).toEqual([[0, 3]]);
    });

    it("sends one reading alone when it exceeds the limit by itself", () => {
      const { outbox } = open();
      outbox.append([reading("m1", 0), reading("m1", 1)]);
      expect(drain(outbox, 10).map((b) => b.count)).toEqual([1, 1]);
    });
  });

  it("counts unsent fault events in memory exactly: duplicates, acks and a reopen", () => {
    const { dir, remove } = tempDir("outbox");
    cleanups.push(remove);
    const event = (eventId: string) => ({
      eventId,
      meterId: "m1",
      kind: "voltageSag" as const,
      state: "start" as const,
      phase: "L1" as const,
      value: 180,
      threshold: 207,
      ts: "2026-01-01T00:00:00.000Z",
      durationMs: null,
      clock: "synced" as const,
    });
    const first = open(dir).outbox;
    expect(first.nextEvents(10)).toEqual([]);
    first.appendEvents([event("e1"), event("e2")]);
    first.appendEvents([event("e1")]); // seen again: stored once
    expect(first.stats().pendingEvents).toBe(2);
    const [e1] = first.nextEvents(10);
    first.ackEvents([e1?.rowId as number]);
    first.ackEvents([e1?.rowId as number]); // twice: counted once
    expect(first.stats().pendingEvents).toBe(1);
    first.close();
    const second = open(dir).outbox;
    expect(second.nextEvents(10).map((e) => e.event.eventId)).toEqual(["e2"]);
    expect(second.stats().pendingEvents).toBe(1);
  });

  it("re-stamps the unsynced readings of this boot from their monotonic time, keeping seq", () => {
    const { outbox } = open();
    const bootId = "boot-1";
    // Unsynced: the wall clock says 1970 + a bit; the monotonic clock says 5 s, 6 s after boot.
    const unsynced: NewReading[] = [5_000, 6_000].map((monoMs) => ({
      meterId: "m1",
      ts: new Date(monoMs).toISOString(),
      clock: "unsynced",
      values: { importEnergyKwh: monoMs },
    }));
    const monotonic = new Map(unsynced.map((r, i) => [r, [5_000, 6_000][i] as number]));
    outbox.append(unsynced, { bootId, monotonicMsOf: (r) => monotonic.get(r) ?? Number.NaN });
    outbox.append([reading("m2", 1)]); // synced: untouched
    outbox.append([{ ...reading("m3", 2), clock: "unsynced" }], { bootId: "older-boot", monotonicMsOf: () => 1 });
    // Synchronised: wall - monotonic = 2026-01-01T00:00:00Z - 0.
    const offset = Date.UTC(2026, 0, 1);
    expect(outbox.restamp(bootId, offset)).toBe(2);
    expect(outbox.restamp(bootId, offset)).toBe(0); // once
    const batch = outbox.nextBatch({ maxReadings: 10, maxBytes: 1e6 }).readings;
    expect(batch.map((r) => [r.seq, r.meterId, r.ts, r.clock])).toEqual([
      [0, "m1", "2026-01-01T00:00:05.000Z", "synced"],
      [1, "m1", "2026-01-01T00:00:06.000Z", "synced"],
      [2, "m2", "2026-01-01T00:00:01.000Z", "synced"],
      // Another boot's monotonic clock means nothing now: it stays unsynced (the cloud knows what that means).
      [3, "m3", "2026-01-01T00:00:02.000Z", "unsynced"],
    ]);
  });
});
