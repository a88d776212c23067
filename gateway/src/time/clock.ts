/**
 * Time as a port (CONVENTIONS §4): the bus scheduler and the forwarder take a Clock so
 * tests can drive them with a fake one instead of waiting on real timers.
 */
export interface Clock {
  /** Wall-clock time, milliseconds since the Unix epoch (UTC). Stamps readings; may jump when NTP syncs. */
  nowMs(): number;
  /** Monotonic milliseconds from an arbitrary origin. Schedules polls; never jumps. */
  monotonicMs(): number;
  /**
   * Resolves after `durationMs` (monotonic), or early, without rejecting, when `signal` aborts.
   * Never throws.
   */
  sleep(durationMs: number, signal?: AbortSignal): Promise<void>;
  /** True once the wall clock is believed synchronised (DESIGN "Time"). */
  isSynced(): boolean;
}

/**
 * A Raspberry Pi has no RTC: until NTP syncs, the wall clock starts at 1970 or at the
 * time fake-hwclock saved at shutdown. A time before this release was built is certainly
 * wrong; a plausible but stale fake-hwclock time is not detectable here. The time issue
 * replaces this heuristic with a real synchronisation signal (timedatectl / adjtimex).
 */
const EARLIEST_PLAUSIBLE_MS = Date.UTC(2025, 0, 1);

export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  sleep: (durationMs, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted === true) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, durationMs));
      signal?.addEventListener("abort", done, { once: true });
    }),
  isSynced: () => Date.now() >= EARLIEST_PLAUSIBLE_MS,
};
