import path from "node:path";
import { tempDir } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import { AppendBuffer } from "./appendBuffer.js";
import type { NewReading } from "./outbox.js";
import { SqliteOutbox } from "./sqliteOutbox.js";

const reading = (second: number, clock: "synced" | "unsynced" = "synced"): NewReading => ({
  meterId: "m1",
  ts: new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString(),
  clock,
  values: { importEnergyKwh: second },
});

describe("AppendBuffer (group commit onto a real SQLite outbox)", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });
  function outbox(): SqliteOutbox {
    const temp = tempDir("append-buffer");
    cleanups.push(temp.remove);
    const box = new SqliteOutbox({ file: path.join(temp.dir, "outbox.sqlite") });
    cleanups.unshift(() => box.close());
    return box;
  }

  it("gathers readings and commits them in one append on flush, in order", () => {
    const box = outbox();
    const appends: number[] = [];
    box.onAppend(() => appends.push(box.depth()));
    const buffer = new AppendBuffer({ outbox: box, flushMs: 60_000, logger: silentLogger() });
    for (let i = 0; i < 5; i++) buffer.add(reading(i));
    expect(box.depth()).toBe(0);
    buffer.flush();
    expect(appends).toEqual([5]); // one transaction, one fsync
    expect(box.nextBatch({ maxReadings: 10, maxBytes: 1e6 }).readings.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4]);
    buffer.flush(); // nothing held: no empty append
    expect(appends).toEqual([5]);
  });

  it("commits each reading at once with flushMs 0", () => {
    const box = outbox();
    const buffer = new AppendBuffer({ outbox: box, flushMs: 0, logger: silentLogger() });
    buffer.add(reading(1));
    expect(box.depth()).toBe(1);
  });

  it("takes an unsynced reading's monotonic time when it is added, not when it is flushed", () => {
    const box = outbox();
    let offsetMs = 0; // wall - monotonic; NTP changes it between add and flush
    const buffer = new AppendBuffer({
      outbox: box,
      flushMs: 60_000,
      unsynced: { bootId: "b", monotonicMsOf: (r) => Date.parse(r.ts) - offsetMs },
      logger: silentLogger(),
    });
    buffer.add(reading(10, "unsynced"));
    offsetMs = 3_600_000; // the clock was stepped by an hour before the flush
    buffer.flush();
    // Re-stamping with offset 0 must give back the original time: the stamp was taken at add().
    expect(box.restamp("b", 0)).toBe(1);
    expect(box.nextBatch({ maxReadings: 1, maxBytes: 1e6 }).readings[0]?.ts).toBe(reading(10).ts);
  });
});
