import { describeError } from "@edgemeter/shared/core";
import type { Logger } from "pino";
import { RepeatedFailure } from "../logging/repeatedFailure.js";
import type { NewReading, Outbox, UnsyncedStamp } from "./outbox.js";

export interface AppendBufferOptions {
  outbox: Outbox;
  /** Gather readings this long, then commit them in one transaction. 0: commit each at once. */
  flushMs: number;
  /** Most readings held in memory when the disk refuses writes; beyond, the oldest are lost (counted). */
  maxHeld?: number;
  unsynced?: UnsyncedStamp;
  logger: Logger;
}

/**
 * Group commit for the outbox: with synchronous=FULL every transaction is one fsync of the
 * WAL, and an SD card's endurance is counted in writes. Thirty-two meters polled each second
 * cost thirty-two syncs a second when appended one by one, five when gathered for 200 ms.
 * What is gathered and not yet committed is lost on a power cut: at most `flushMs` of
 * readings, which the meters' cumulative registers still cover (DESIGN "Measurements").
 */
export class AppendBuffer {
  private held: NewReading[] = [];
  /**
   * Where each held unsynced reading sits on the boot's monotonic clock, taken when it is
   * added, not at the flush: NTP may step the wall clock in between.
   */
  private readonly monotonicMs = new Map<NewReading, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly failure: RepeatedFailure;
  private lostReadings = 0;

  constructor(private readonly options: AppendBufferOptions) {
    this.failure = new RepeatedFailure(options.logger, "the outbox");
  }

  /** Readings lost because the disk refused them for longer than the buffer could hold. */
  get lost(): number {
    return this.lostReadings;
  }

  add(reading: NewReading): void {
    this.held.push(reading);
    const unsynced = this.options.unsynced;
    if (reading.clock === "unsynced" && unsynced !== undefined) {
      this.monotonicMs.set(reading, unsynced.monotonicMsOf(reading));
    }
    if (this.options.flushMs <= 0) {
      this.flush();
      return;
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, this.options.flushMs);
    }
  }

  /** Commits what is held. On a write error keeps it for the next flush (bounded). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held.length === 0) return;
    const batch = this.held;
    this.held = [];
    try {
      const unsynced = this.options.unsynced;
      this.options.outbox.append(
        batch,
        unsynced === undefined
          ? undefined
          : {
              bootId: unsynced.bootId,
              monotonicMsOf: (r) => this.monotonicMs.get(r) ?? unsynced.monotonicMsOf(r),
            },
      );
      for (const reading of batch) this.monotonicMs.delete(reading);
      this.failure.recover();
    } catch (error) {
      const maxHeld = this.options.maxHeld ?? 100_000;
      this.held = batch.concat(this.held);
      const excess = this.held.length - maxHeld;
      if (excess > 0) {
        for (const reading of this.held.splice(0, excess)) this.monotonicMs.delete(reading);
        this.lostReadings += excess;
      }
      this.failure.fail(
        { err: describeError(error), held: this.held.length, lost: this.lostReadings },
        "cannot write readings to the outbox; holding them in memory",
      );
      if (this.timer === undefined) {
        this.timer = setTimeout(
          () => {
            this.timer = undefined;
            this.flush();
          },
          Math.max(1_000, this.options.flushMs),
        );
      }
    }
  }
}
