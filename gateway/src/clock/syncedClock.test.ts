import { writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import type { NewReading } from "../outbox/outbox.js";
import { SqliteOutbox } from "../outbox/sqliteOutbox.js";
import type { Clock } from "../time/clock.js";
import { SyncedClock } from "./syncedClock.js";

/** A clock whose wall time can jump (NTP setting it) while its monotonic time moves steadily. */
class JumpingClock implements Clock {
  private wallMs: number;
  private monoMs = 1_000_000;
  constructor(startWallMs: number) {
    this.wallMs = startWallMs;
  }
  nowMs() {
    return this.wallMs;
  }
  monotonicMs() {
    return this.monoMs;
  }
  isSynced() {
    return false;
  }
  sleep() {
    return Promise.resolve();
  }
  advance(ms: number) {
    this.wallMs += ms;
    this.monoMs += ms;
  }
  setWallMs(ms: number) {
    this.wallMs = ms;
  }
}

describe("SyncedClock with a real sync file and a real SQLite outbox", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  it("stamps readings unsynced until the sync file appears, then re-stamps them from the monotonic clock", () => {
    const temp = tempDir("clock");
    cleanups.push(temp.remove);
    const syncedFile = path.join(temp.dir, "synchronized");
    const outbox = new SqliteOutbox({ file: path.join(temp.dir, "outbox.sqlite") });
    cleanups.unshift(() => outbox.close());

    // A Pi without RTC: the wall clock starts at the fake-hwclock time, 2026-03-01, while it is
    // really 2026-06-01T10:00:00Z. The boot's monotonic clock is at 20 s.
    const base = new JumpingClock(Date.UTC(2026, 2, 1));
    const bootStartMono = base.monotonicMs() - 20_000;
    let restamped = -1;
    const clock: SyncedClock = new SyncedClock({
      syncedFile,
      pollMs: 1_000,
      base,
      bootId: "boot-a",
      bootMonotonicMs: () => base.monotonicMs() - bootStartMono,
      onSync: (offset) => {
        restamped = outbox.restamp("boot-a", offset);
        expect(clock.isSynced()).toBe(false); // re-stamped before anyone sees "synced"
      },
      logger: silentLogger(),
    });
    expect(clock.check()).toBe(false);

    const stamp = {
      bootId: clock.bootId,
      monotonicMsOf: (r: NewReading) => clock.bootMonotonicMsOfWall(Date.parse(r.ts)),
    };
    for (let i = 0; i < 3; i++) {
      outbox.append(
        [
          {
            meterId: "m1",
            ts: new Date(clock.nowMs()).toISOString(),
            clock: "unsynced",
            values: { importEnergyKwh: i },
          },
        ],
        stamp,
      );
      base.advance(1_000);
    }
    // NTP sets the clock: it jumps forward by three months (and could as well jump backwards).
    const trueNowMs = Date.UTC(2026, 5, 1, 10, 0, 0);
    base.setWallMs(trueNowMs);
    writeFileSync(syncedFile, "");
    expect(clock.check()).toBe(true);
    expect(restamped).toBe(3);
    expect(clock.isSynced()).toBe(true);
    outbox.append([
      { meterId: "m1", ts: new Date(clock.nowMs()).toISOString(), clock: "synced", values: { importEnergyKwh: 3 } },
    ]);

    const readings = outbox.nextBatch({ maxReadings: 10, maxBytes: 1e6 }).readings;
    // The three readings were taken 3 s, 2 s and 1 s before the sync moment.
    expect(readings.map((r) => [r.seq, r.ts, r.clock])).toEqual([
      [0, new Date(trueNowMs - 3_000).toISOString(), "synced"],
      [1, new Date(trueNowMs - 2_000).toISOString(), "synced"],
      [2, new Date(trueNowMs - 1_000).toISOString(), "synced"],
      [3, new Date(trueNowMs).toISOString(), "synced"],
    ]);
  });

  it("stays unsynced while the wall clock is implausible, whatever the file says", () => {
    const temp = tempDir("clock");
    cleanups.push(temp.remove);
    const syncedFile = path.join(temp.dir, "synchronized");
    writeFileSync(syncedFile, "");
    const clock = new SyncedClock({
      syncedFile,
      pollMs: 1_000,
      base: new JumpingClock(Date.UTC(1970, 0, 1)),
      bootId: "b",
      bootMonotonicMs: () => 0,
      logger: silentLogger(),
    });
    expect(clock.check()).toBe(false);
  });
});
