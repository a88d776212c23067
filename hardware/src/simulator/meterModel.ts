import { MEASUREMENT_NAMES, type MeasurementName } from "@edgemeter/shared";
import { loadFactorAt } from "./loadShape.js";
import { Prng } from "./prng.js";

/** Every measurement the model produces, in its canonical unit. */
export type MeterValues = Record<MeasurementName, number>;

export interface MeterModelOptions {
  seed: number;
  /** Mean active power of the household over a week (W). */
  baseLoadW: number;
  /** Import energy register at start (kWh). */
  startEnergyKwh: number;
  /** Local wall clock of the household relative to UTC (min), for the daily load shape. */
  utcOffsetMinutes: number;
}

const NOMINAL_VOLTAGE_V = 230;
const NOMINAL_FREQUENCY_HZ = 50;
const MS_PER_HOUR = 3_600_000;
/** Phase angles of L1, L2, L3 voltages (rad). */
const PHASE_ANGLES_RAD = [0, (-2 * Math.PI) / 3, (2 * Math.PI) / 3] as const;

/**
 * An Ornstein–Uhlenbeck process: noise that wanders around `mean` and is pulled back with
 * time constant `tauMs`. Its exact update holds for any step length, so a test that jumps
 * the clock by an hour gets the same statistics as one ticking every second.
 */
class Wander {
  constructor(
    private value: number,
    private readonly mean: number,
    private readonly sigma: number,
    private readonly tauMs: number,
  ) {}

  step(dtMs: number, prng: Prng): number {
    const decay = Math.exp(-dtMs / this.tauMs);
    this.value =
      this.mean + (this.value - this.mean) * decay + this.sigma * Math.sqrt(1 - decay * decay) * prng.gaussian();
    return this.value;
  }

  get current(): number {
    return this.value;
  }
}

/**
 * The electrical model of one simulated three-phase household meter: voltages near
 * 230 V with noise, frequency near 50 Hz with slow wander, active power following the
 * daily household shape with appliance-like fluctuation, unevenly split over the phases,
 * power factor ~0.95; currents, apparent and reactive power, L-L voltages and neutral
 * current follow from those by the phasor relations. Energy registers integrate the
 * power that was served (see advance()).
 */
export class MeterModel {
  private readonly prng: Prng;
  private readonly voltages: [Wander, Wander, Wander];
  private readonly frequency: Wander;
  /** log of a multiplicative load fluctuation (kettle on, fridge off…). */
  private readonly loadNoise: Wander;
  private readonly phaseShares: [number, number, number];
  private readonly powerFactors: [Wander, Wander, Wander];
  private importEnergyKwh: number;
  private importReactiveEnergyKvarh = 0;
  private lastMs: number;

  constructor(
    private readonly options: MeterModelOptions,
    startMs: number,
  ) {
    this.prng = new Prng(options.seed);
    const prng = this.prng;
    // Per-meter character: a feeder a little above or below nominal, an uneven phase split.
    const feederV = NOMINAL_VOLTAGE_V + prng.between(-3, 3);
    this.voltages = [0, 1, 2].map(() => {
      const mean = feederV + prng.between(-1, 1);
      return new Wander(mean, mean, 0.8, 30_000);
    }) as [Wander, Wander, Wander];
    this.frequency = new Wander(NOMINAL_FREQUENCY_HZ, NOMINAL_FREQUENCY_HZ, 0.02, 300_000);
    const sigmaLog = 0.3;
    this.loadNoise = new Wander(0, 0, sigmaLog, 600_000);
    const raw = [prng.between(0.8, 1.6), prng.between(0.5, 1.1), prng.between(0.3, 0.9)];
    const total = raw.reduce((a, b) => a + b, 0);
    this.phaseShares = raw.map((r) => r / total) as [number, number, number];
    this.powerFactors = [0, 1, 2].map(() => {
      const mean = prng.between(0.93, 0.97);
      return new Wander(mean, mean, 0.01, 600_000);
    }) as [Wander, Wander, Wander];
    this.importEnergyKwh = options.startEnergyKwh;
    this.lastMs = startMs;
  }

  /**
   * Moves the model to `atMs` and returns the values there. The energy registers first
   * add the power that was served since the previous step (`servedPowerW`, `servedReactivePowerVar`,
   * constant in between, as the meter's state was), so a register difference is exactly
   * the integral of the served power over that interval.
   */
  advance(atMs: number, servedPowerW: number, servedReactivePowerVar: number): MeterValues {
    const dtMs = Math.max(0, atMs - this.lastMs);
    this.lastMs = atMs;
    this.importEnergyKwh += (servedPowerW * dtMs) / MS_PER_HOUR / 1000;
    this.importReactiveEnergyKvarh += (Math.max(0, servedReactivePowerVar) * dtMs) / MS_PER_HOUR / 1000;
    for (const v of this.voltages) v.step(dtMs, this.prng);
    this.frequency.step(dtMs, this.prng);
    this.loadNoise.step(dtMs, this.prng);
    for (const pf of this.powerFactors) pf.step(dtMs, this.prng);
    return this.valuesAt(atMs);
  }

  /** Values at the current state without moving it (the first snapshot). */
  valuesAt(atMs: number): MeterValues {
    const sigmaLog = 0.3;
    // exp(x - σ²/2) has mean 1: the fluctuation does not change the average consumption.
    const fluctuation = Math.exp(this.loadNoise.current - (sigmaLog * sigmaLog) / 2);
    const totalW = this.options.baseLoadW * loadFactorAt(atMs, this.options.utcOffsetMinutes) * fluctuation;
    const voltages = this.voltages.map((v) => v.current) as [number, number, number];
    const values = Object.fromEntries(MEASUREMENT_NAMES.map((name) => [name, 0])) as MeterValues;

    let apparentVa = 0;
    let reactiveVar = 0;
    let neutralRe = 0;
    let neutralIm = 0;
    const phaseKeys = [
      ["voltageL1V", "currentL1A", "activePowerL1W", "powerFactorL1"],
      ["voltageL2V", "currentL2A", "activePowerL2W", "powerFactorL2"],
      ["voltageL3V", "currentL3A", "activePowerL3W", "powerFactorL3"],
    ] as const;
    phaseKeys.forEach(([voltageKey, currentKey, powerKey, pfKey], i) => {
      const voltageV = voltages[i] ?? NOMINAL_VOLTAGE_V;
      const powerW = totalW * (this.phaseShares[i] ?? 0);
      const powerFactor = Math.min(0.995, Math.max(0.85, this.powerFactors[i]?.current ?? 0.95));
      const phiRad = Math.acos(powerFactor);
      const currentA = powerW / (voltageV * powerFactor);
      values[voltageKey] = voltageV;
      values[currentKey] = currentA;
      values[powerKey] = powerW;
      values[pfKey] = powerFactor;
      apparentVa += powerW / powerFactor;
      reactiveVar += powerW * Math.tan(phiRad);
      // Inductive load: each current lags its phase voltage by φ.
      const angle = (PHASE_ANGLES_RAD[i] ?? 0) - phiRad;
      neutralRe += currentA * Math.cos(angle);
      neutralIm += currentA * Math.sin(angle);
    });
    const [v1, v2, v3] = voltages;
    // |V1 − V2·e^(−j120°)| for phasors 120° apart: √(V1² + V2² + V1·V2).
    values.voltageL1L2V = Math.sqrt(v1 * v1 + v2 * v2 + v1 * v2);
    values.voltageL2L3V = Math.sqrt(v2 * v2 + v3 * v3 + v2 * v3);
    values.voltageL3L1V = Math.sqrt(v3 * v3 + v1 * v1 + v3 * v1);
    values.currentNA = Math.hypot(neutralRe, neutralIm);
    values.activePowerW = totalW;
    values.apparentPowerVa = apparentVa;
    values.reactivePowerVar = reactiveVar;
    values.powerFactor = apparentVa > 0 ? totalW / apparentVa : 1;
    values.frequencyHz = this.frequency.current;
    values.importEnergyKwh = this.importEnergyKwh;
    values.exportEnergyKwh = 0;
    values.importReactiveEnergyKvarh = this.importReactiveEnergyKvarh;
    values.exportReactiveEnergyKvarh = 0;
    return values;
  }
}
