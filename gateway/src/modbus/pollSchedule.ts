/**
 * Drift-free scheduling: the next poll is due one interval after the previous DUE time,
 * not after the poll finished, so a meter polled every 1000 ms is read at :00, :01, :02…
 * however long each poll takes. Slots that have already passed entirely (the bus was
 * busy, the process was paused) are skipped rather than polled in a burst to catch up.
 *
 * @returns the next due time (>= nowMs, > previousDueMs) and how many slots were skipped.
 */
export function nextDue(previousDueMs: number, intervalMs: number, nowMs: number): { dueMs: number; skipped: number } {
  const steps = Math.max(1, Math.ceil((nowMs - previousDueMs) / intervalMs));
  return { dueMs: previousDueMs + steps * intervalMs, skipped: steps - 1 };
}
