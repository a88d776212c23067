import type { Phase } from "@edgemeter/shared";
import type { MeterValues } from "./meterModel.js";

/**
 * Scripted power-quality events for the fault detector, in the terms of EN 50160 /
 * IEC 61000-4-30: a dip (sag) is a drop of the RMS voltage below 90 % of nominal, a swell
 * a rise above 110 %, an interruption a drop below 5 % (here: 0 V, no current, no power).
 * Times are the simulator clock's epoch ms; an event is active in [startMs, startMs + durationMs).
 */
export type PowerQualityScenario =
  | {
      kind: "sag";
      startMs: number;
      durationMs: number /** residual voltage, % of normal (e.g. 70) */;
      residualPct: number;
      phases?: Phase[];
    }
  | {
      kind: "swell";
      startMs: number;
      durationMs: number /** voltage, % of normal (e.g. 115) */;
      levelPct: number;
      phases?: Phase[];
    }
  | { kind: "interruption"; startMs: number; durationMs: number }
  | {
      kind: "frequencyDrift";
      startMs: number;
      durationMs: number /** drift rate (Hz per minute), signed */;
      driftHzPerMin: number;
    };

const PHASE_KEYS: Record<Phase, { voltage: keyof MeterValues; current: keyof MeterValues; power: keyof MeterValues }> =
  {
    L1: { voltage: "voltageL1V", current: "currentL1A", power: "activePowerL1W" },
    L2: { voltage: "voltageL2V", current: "currentL2A", power: "activePowerL2W" },
    L3: { voltage: "voltageL3V", current: "currentL3A", power: "activePowerL3W" },
  };

const ZEROED_BY_INTERRUPTION: readonly (keyof MeterValues)[] = [
  "voltageL1V",
  "voltageL2V",
  "voltageL3V",
  "voltageL1L2V",
  "voltageL2L3V",
  "voltageL3L1V",
  "currentL1A",
  "currentL2A",
  "currentL3A",
  "currentNA",
  "activePowerW",
  "activePowerL1W",
  "activePowerL2W",
  "activePowerL3W",
  "reactivePowerVar",
  "apparentPowerVa",
];

/** The model's values as the scenarios active at `atMs` change them (a pure function). */
export function applyScenarios(
  values: MeterValues,
  scenarios: readonly PowerQualityScenario[],
  atMs: number,
): MeterValues {
  const out = { ...values };
  for (const scenario of scenarios) {
    if (atMs < scenario.startMs || atMs >= scenario.startMs + scenario.durationMs) continue;
    switch (scenario.kind) {
      case "sag":
      case "swell": {
        const factor = (scenario.kind === "sag" ? scenario.residualPct : scenario.levelPct) / 100;
        for (const phase of scenario.phases ?? (["L1", "L2", "L3"] as const)) {
          const keys = PHASE_KEYS[phase];
          out[keys.voltage] = out[keys.voltage] * factor;
        }
        break;
      }
      case "interruption":
        for (const key of ZEROED_BY_INTERRUPTION) out[key] = 0;
        break;
      case "frequencyDrift":
        out.frequencyHz += (scenario.driftHzPerMin * (atMs - scenario.startMs)) / 60_000;
        break;
      default: {
        const unknown: never = scenario;
        throw new Error(`unknown scenario ${JSON.stringify(unknown)}`);
      }
    }
  }
  return out;
}
