import LOAD_SHAPE from "./loadShape.json" with { type: "json" };

/**
 * Average household load shape: 48 half-hour factors for weekdays and for weekends,
 * normalised so the week's mean is 1, derived from 10 real NSW households (SGSC trial) by
 * hardware/scripts/deriveLoadShape.mjs; provenance is in loadShape.json.
 */
export const HOUSEHOLD_MEAN_POWER_W: number = LOAD_SHAPE.meanPowerW;

const SLOT_MS = LOAD_SHAPE.slotMinutes * 60_000;
const DAY_MS = 86_400_000;

/**
 * The load factor at `atMs` (UTC ms) for a household whose wall clock is
 * `utcOffsetMinutes` ahead of UTC, interpolated linearly between slot centres so the
 * power does not jump every half hour.
 */
export function loadFactorAt(atMs: number, utcOffsetMinutes: number): number {
  const localMs = atMs + utcOffsetMinutes * 60_000;
  const dayStartMs = Math.floor(localMs / DAY_MS) * DAY_MS;
  // Slot i is centred at (i + 0.5) slots after midnight: position p between centres.
  const position = (localMs - dayStartMs) / SLOT_MS - 0.5;
  const lower = Math.floor(position);
  const fraction = position - lower;
  return (1 - fraction) * factorOfSlot(dayStartMs, lower) + fraction * factorOfSlot(dayStartMs, lower + 1);
}

/** Slot index may be -1 or 48: it then belongs to the neighbouring day (weekday/weekend may differ). */
function factorOfSlot(dayStartMs: number, slot: number): number {
  const slotsPerDay = LOAD_SHAPE.weekday.length;
  const dayOffset = Math.floor(slot / slotsPerDay);
  const index = slot - dayOffset * slotsPerDay;
  const dayOfWeek = new Date(dayStartMs + dayOffset * DAY_MS).getUTCDay();
  const shape = dayOfWeek === 0 || dayOfWeek === 6 ? LOAD_SHAPE.weekend : LOAD_SHAPE.weekday;
  return shape[index] ?? 1;
}
