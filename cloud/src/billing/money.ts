/**
 * Money is integer minor units (cents) everywhere a bill stores or adds it.
 *
 * THE ROUNDING RULE (one, for every bill): each charge SECTION of a bill (energy, demand,
 * fixed, export credit, minimum true-up, each tax) is rounded ONCE from the exact sum of its
 * line items (quantity × rate in floating point) to the minor unit, half-even ("banker's
 * rounding", IEEE 754 roundTiesToEven: no upward bias over many bills). The section's line
 * items then share that rounded amount by the largest-remainder method (engine.ts
 * allocateSection), so every line is within one cent of its exact amount, lines add up to
 * their section, and the bill total is the sum of the sections. Rounding each line separately
 * instead would make a 4-period TOU energy charge drift by a cent from the rounded sum that
 * tariff calculators such as NREL SAM publish (5 of 12 months of SAM's residential test case).
 * Before rounding, amounts are snapped to 1e-6 of a minor unit so binary noise
 * (0.1 + 0.2 = 0.30000000000000004) never decides a tie.
 */
export type MinorUnits = number;

/** Rounds an exact amount in major units (e.g. 12.345 USD) to minor units, half-even. */
export function toMinorUnits(amountMajor: number, minorPerMajor = 100): MinorUnits {
  const scaled = Number((amountMajor * minorPerMajor).toFixed(6));
  return roundHalfEven(scaled);
}

export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Minor units back to major units for display and JSON (12345 → 123.45). */
export function toMajorUnits(minor: MinorUnits, minorPerMajor = 100): number {
  return Number((minor / minorPerMajor).toFixed(Math.round(Math.log10(minorPerMajor))));
}

/** "123.45" with the currency's decimals, for CSV and PDF. */
export function formatMinorUnits(minor: MinorUnits, minorPerMajor = 100): string {
  return (minor / minorPerMajor).toFixed(Math.round(Math.log10(minorPerMajor)));
}
