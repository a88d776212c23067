/**
 * Slows password guessing (issue 6 §2): per client address, the first FREE_FAILURES wrong
 * passwords cost nothing extra; after that each attempt must wait a delay that doubles with
 * every further failure, up to MAX_DELAY_MS. A global budget bounds guessing from many
 * addresses. A success clears the address's record. Pure: the caller passes monotonic time.
 */
export const FREE_FAILURES = 3;
const BASE_DELAY_MS = 1_000;
const MAX_DELAY_MS = 5 * 60_000;
/** Forget an address after this long without a failure. */
const FORGET_AFTER_MS = 60 * 60_000;
/** At most this many failures from all addresses together per GLOBAL_WINDOW_MS. */
const GLOBAL_FAILURES = 100;
const GLOBAL_WINDOW_MS = 60 * 60_000;
const MAX_TRACKED = 10_000;

interface Record {
  failures: number;
  lastFailureMs: number;
  notBeforeMs: number;
}

export type ThrottleDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

export class LoginThrottle {
  private readonly byClient = new Map<string, Record>();
  private globalFailures: number[] = [];

  /** May `client` try a password now? */
  check(client: string, nowMs: number): ThrottleDecision {
    this.globalFailures = this.globalFailures.filter((t) => nowMs - t < GLOBAL_WINDOW_MS);
    if (this.globalFailures.length >= GLOBAL_FAILURES) {
      const oldest = this.globalFailures[0] as number;
      return { allowed: false, retryAfterMs: oldest + GLOBAL_WINDOW_MS - nowMs };
    }
    const record = this.byClient.get(client);
    if (record === undefined || nowMs >= record.notBeforeMs) return { allowed: true };
    return { allowed: false, retryAfterMs: record.notBeforeMs - nowMs };
  }

  /** @returns the delay now imposed on the next attempt (0 within the free failures). */
  failed(client: string, nowMs: number): number {
    this.forgetOld(nowMs);
    this.globalFailures.push(nowMs);
    const record = this.byClient.get(client) ?? { failures: 0, lastFailureMs: nowMs, notBeforeMs: 0 };
    record.failures++;
    record.lastFailureMs = nowMs;
    const over = record.failures - FREE_FAILURES;
    const delayMs = over <= 0 ? 0 : Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (over - 1));
    record.notBeforeMs = nowMs + delayMs;
    this.byClient.set(client, record);
    return delayMs;
  }

  succeeded(client: string): void {
    this.byClient.delete(client);
  }

  private forgetOld(nowMs: number): void {
    for (const [client, record] of this.byClient) {
      if (nowMs - record.lastFailureMs > FORGET_AFTER_MS) this.byClient.delete(client);
    }
    // A flood of addresses must not grow the map without bound: drop the oldest.
    while (this.byClient.size >= MAX_TRACKED) {
      const first = this.byClient.keys().next().value;
      if (first === undefined) break;
      this.byClient.delete(first);
    }
  }
}
