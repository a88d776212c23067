import type { Clock } from "./clock.js";

interface Sleeper {
  wakeAtMs: number;
  resolve: () => void;
}

/**
 * A Clock that only moves when told to (`advance`), for deterministic scheduling tests.
 * Wall time and monotonic time move together, starting at `startMs`.
 */
export class FakeClock implements Clock {
  private currentMs: number;
  private readonly sleepers: Sleeper[] = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.currentMs = startMs;
  }

  nowMs(): number {
    return this.currentMs;
  }

  monotonicMs(): number {
    return this.currentMs;
  }

  isSynced(): boolean {
    return true;
  }

  /** Number of pending sleeps: lets a test wait until the code under test is idle. */
  get pendingSleeps(): number {
    return this.sleepers.length;
  }

  sleep(durationMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return Promise.resolve();
    return new Promise((resolve) => {
      const sleeper: Sleeper = {
        wakeAtMs: this.currentMs + Math.max(0, durationMs),
        resolve: () => {
          signal?.removeEventListener("abort", abort);
          resolve();
        },
      };
      const abort = () => {
        this.remove(sleeper);
        sleeper.resolve();
      };
      signal?.addEventListener("abort", abort, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  /** Moves time forward by `durationMs`, waking every sleeper whose time has come, in order. */
  async advance(durationMs: number): Promise<void> {
    const targetMs = this.currentMs + durationMs;
    for (;;) {
      const next = this.sleepers.filter((s) => s.wakeAtMs <= targetMs).sort((a, b) => a.wakeAtMs - b.wakeAtMs)[0];
      if (next === undefined) break;
      this.currentMs = Math.max(this.currentMs, next.wakeAtMs);
      this.remove(next);
      next.resolve();
      // Let the woken code run up to its next sleep before waking the next sleeper.
      await settle();
    }
    this.currentMs = targetMs;
  }

  private remove(sleeper: Sleeper): void {
    const index = this.sleepers.indexOf(sleeper);
    if (index >= 0) this.sleepers.splice(index, 1);
  }
}

/** Resolves once every queued microtask (and what it queues in turn) has run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
