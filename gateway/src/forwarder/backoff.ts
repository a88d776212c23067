/**
 * "Full jitter" exponential backoff (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"): a uniformly random delay in [0, min(cap, base * 2^(attempt-1))). Spreading the
 * retries keeps a fleet of gateways from reconnecting in lockstep after a broker outage.
 *
 * @param attempt 1 for the first retry.
 * @param random a source in [0, 1), injectable for tests.
 */
export function fullJitterBackoffMs(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  const ceilingMs = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceilingMs);
}
