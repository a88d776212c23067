/**
 * The measurement vocabulary (DESIGN "Measurements"): canonical names carry their unit.
 * `cumulative` registers only ever rise on a healthy meter; consumption is always a
 * difference of them, never a sum of power samples.
 */
export const MEASUREMENTS = {
  voltageL1V: { unit: "V", kind: "instant", phase: "L1", label: "Voltage L1-N" },
  voltageL2V: { unit: "V", kind: "instant", phase: "L2", label: "Voltage L2-N" },
  voltageL3V: { unit: "V", kind: "instant", phase: "L3", label: "Voltage L3-N" },
  voltageL1L2V: { unit: "V", kind: "instant", phase: null, label: "Voltage L1-L2" },
  voltageL2L3V: { unit: "V", kind: "instant", phase: null, label: "Voltage L2-L3" },
  voltageL3L1V: { unit: "V", kind: "instant", phase: null, label: "Voltage L3-L1" },
  currentL1A: { unit: "A", kind: "instant", phase: "L1", label: "Current L1" },
  currentL2A: { unit: "A", kind: "instant", phase: "L2", label: "Current L2" },
  currentL3A: { unit: "A", kind: "instant", phase: "L3", label: "Current L3" },
  currentNA: { unit: "A", kind: "instant", phase: null, label: "Neutral current" },
  activePowerW: { unit: "W", kind: "instant", phase: null, label: "Active power, total" },
  activePowerL1W: { unit: "W", kind: "instant", phase: "L1", label: "Active power L1" },
  activePowerL2W: { unit: "W", kind: "instant", phase: "L2", label: "Active power L2" },
  activePowerL3W: { unit: "W", kind: "instant", phase: "L3", label: "Active power L3" },
  reactivePowerVar: { unit: "var", kind: "instant", phase: null, label: "Reactive power, total" },
  apparentPowerVa: { unit: "VA", kind: "instant", phase: null, label: "Apparent power, total" },
  powerFactor: { unit: "", kind: "instant", phase: null, label: "Power factor, total" },
  powerFactorL1: { unit: "", kind: "instant", phase: "L1", label: "Power factor L1" },
  powerFactorL2: { unit: "", kind: "instant", phase: "L2", label: "Power factor L2" },
  powerFactorL3: { unit: "", kind: "instant", phase: "L3", label: "Power factor L3" },
  frequencyHz: { unit: "Hz", kind: "instant", phase: null, label: "Frequency" },
  importEnergyKwh: { unit: "kWh", kind: "cumulative", phase: null, label: "Active energy import" },
  exportEnergyKwh: { unit: "kWh", kind: "cumulative", phase: null, label: "Active energy export" },
  importReactiveEnergyKvarh: { unit: "kvarh", kind: "cumulative", phase: null, label: "Reactive energy import" },
  exportReactiveEnergyKvarh: { unit: "kvarh", kind: "cumulative", phase: null, label: "Reactive energy export" },
} as const satisfies Record<
  string,
  { unit: string; kind: "instant" | "cumulative"; phase: "L1" | "L2" | "L3" | null; label: string }
>;

export type MeasurementName = keyof typeof MEASUREMENTS;

export const MEASUREMENT_NAMES = Object.keys(MEASUREMENTS) as [MeasurementName, ...MeasurementName[]];

export function isMeasurementName(name: string): name is MeasurementName {
  return Object.hasOwn(MEASUREMENTS, name);
}

export function unitOf(name: MeasurementName): string {
  return MEASUREMENTS[name].unit;
}

export type Phase = "L1" | "L2" | "L3";
export const PHASES: readonly Phase[] = ["L1", "L2", "L3"];
