import { createHash } from "node:crypto";
import type { EventKind, MeterEvent, Phase, Reading } from "@edgemeter/shared";
import type { NewReading } from "../outbox/outbox.js";

/**
 * Power-quality thresholds for one supply system. Percentages are of the nominal voltage
 * (EN 50160 calls it the declared supply voltage U_c / nominal U_n).
 */
export interface FaultThresholds {
  nominalVoltageV: number;
  nominalFrequencyHz: number;
  /** A sag (dip) starts below this share of nominal. EN 50160 §4.2 / IEC 61000-4-30 §5.4: 90 %. */
  sagStartPct: number;
  /** A swell starts above this share of nominal. EN 50160 §4.2: 110 %. */
  swellStartPct: number;
  /** An interruption starts below this share of nominal. EN 50160 §3.3: 5 %. */
  interruptionStartPct: number;
  /**
   * How far back past the start threshold the value must come before the event ends, so a
   * value hovering at the threshold does not chatter. IEC 61000-4-30 §5.4.2: typically 2 %.
   */
  voltageHysteresisPct: number;
  /** Frequency deviation starts when |f - nominal| exceeds this. EN 50160 §4.2.1: ±1 % (0.5 Hz at 50 Hz). */
  frequencyBandHz: number;
  /** |f - nominal| must fall this far inside the band before the deviation ends. */
  frequencyHysteresisHz: number;
  /**
   * A condition must be seen on consecutive readings spanning at least this long before its
   * start event is raised (the event is then back-dated to the first reading). With one
   * reading per second, 1000 ms means two readings in a row: a single-sample spike (a
   * mis-read, a switching transient) never raises an event.
   */
  minDurationMs: number;
  /** A meter that gave no reading for this long is reported offline. */
  offlineAfterMs: number;
}

/**
 * EN 50160:2010 low-voltage supply characteristics for 230 V / 50 Hz:
 * dip < 90 %, swell > 110 %, interruption < 5 % of U_n (§4.2.3–4.2.4, §4.3.1, §4.3.2 note 1),
 * frequency 50 Hz ± 1 % (§4.2.1, interconnected systems, 99.5 % of a year).
 */
export const EN50160_230V_50HZ: FaultThresholds = {
  nominalVoltageV: 230,
  nominalFrequencyHz: 50,
  sagStartPct: 90,
  swellStartPct: 110,
  interruptionStartPct: 5,
  voltageHysteresisPct: 2,
  frequencyBandHz: 0.5,
  frequencyHysteresisHz: 0.05,
  minDurationMs: 1_000,
  offlineAfterMs: 10_000,
};

/**
 * ANSI C84.1-2020 service voltage for 120 V / 60 Hz: Range A is 114–126 V (95–105 %) at the
 * service entrance; outside Range B (110–127 V, 91.7–105.8 %) corrective action is required.
 * We alarm on Range B. Interruption as in IEEE 1159 (< 10 % of nominal). Frequency: NERC
 * practice treats ±0.5 Hz at 60 Hz as an emergency band (same ±0.5 Hz as EN 50160's 1 % at 50 Hz).
 */
export const ANSI_C84_1_120V_60HZ: FaultThresholds = {
  nominalVoltageV: 120,
  nominalFrequencyHz: 60,
  sagStartPct: (110 / 120) * 100,
  swellStartPct: (127 / 120) * 100,
  interruptionStartPct: 10,
  voltageHysteresisPct: 2,
  frequencyBandHz: 0.5,
  frequencyHysteresisHz: 0.05,
  minDurationMs: 1_000,
  offlineAfterMs: 10_000,
};

export const FAULT_PRESETS = {
  "en50160-230v-50hz": EN50160_230V_50HZ,
  "ansi-c84.1-120v-60hz": ANSI_C84_1_120V_60HZ,
} as const satisfies Record<string, FaultThresholds>;
export type FaultPreset = keyof typeof FAULT_PRESETS;

/** An event before the outbox gave it a clock stamp of record: exactly the wire MeterEvent. */
export type DetectedEvent = MeterEvent;

type ConditionKind = Extract<EventKind, "voltageSag" | "voltageSwell" | "voltageInterruption" | "frequencyDeviation">;

interface Condition {
  kind: ConditionKind;
  phase: Phase | null;
  /** Started? Otherwise only pending (seen, min duration not reached yet). */
  active: boolean;
  startMs: number;
  startTs: string;
  /** Extreme value so far (lowest for sag/interruption, farthest from nominal for swell/frequency). */
  extreme: number;
  threshold: number;
  clock: Reading["clock"];
}

interface MeterState {
  lastReadingMs: number | null;
  registeredMs: number;
  offline: boolean;
  offlineSinceMs: number;
  offlineSinceTs: string;
  offlineEventId: string;
  lastImportKwh: number | null;
  lastExportKwh: number | null;
  conditions: Map<string, Condition>;
}

const VOLTAGE_OF: Record<Phase, "voltageL1V" | "voltageL2V" | "voltageL3V"> = {
  L1: "voltageL1V",
  L2: "voltageL2V",
  L3: "voltageL3V",
};
const PHASES: readonly Phase[] = ["L1", "L2", "L3"];

/**
 * Pure fault detection per meter and phase (DESIGN "gateway"): readings in, events out. No
 * I/O, no timers: `observe` takes each reading, `tick` takes the current wall time to notice
 * silent meters. Every start has exactly one end (or is still active); ids are derived from
 * (meter, kind, phase, start time), so a restarted gateway that sees the same fault again
 * produces the same id and the cloud keeps one.
 */
export class FaultDetector {
  private readonly meters = new Map<string, MeterState>();

  constructor(private readonly thresholdsOf: (meterId: string) => FaultThresholds) {}

  /** Declares a meter so that silence from the start counts as offline. `nowMs`: wall time. */
  register(meterId: string, nowMs: number): void {
    if (!this.meters.has(meterId)) this.meters.set(meterId, newMeterState(nowMs));
  }

  /** Feeds one reading (in time order per meter); returns the events it completes or starts. */
  observe(reading: NewReading | Reading): DetectedEvent[] {
    const t = this.thresholdsOf(reading.meterId);
    const ms = Date.parse(reading.ts);
    let state = this.meters.get(reading.meterId);
    if (state === undefined) {
      state = newMeterState(ms);
      this.meters.set(reading.meterId, state);
    }
    const events: DetectedEvent[] = [];
    if (state.offline) {
      state.offline = false;
      events.push({
        eventId: state.offlineEventId,
        meterId: reading.meterId,
        kind: "meterBack",
        state: "end",
        phase: null,
        value: null,
        threshold: null,
        ts: reading.ts,
        durationMs: Math.max(0, Math.round(ms - state.offlineSinceMs)),
        clock: reading.clock,
      });
    }
    state.lastReadingMs = ms;

    const v = reading.values;
    const nominal = t.nominalVoltageV;
    for (const phase of PHASES) {
      const voltage = v[VOLTAGE_OF[phase]];
      if (voltage === undefined) continue;
      const pct = (voltage / nominal) * 100;
      const sagOn = ofNominal(t.sagStartPct, nominal);
      const swellOn = ofNominal(t.swellStartPct, nominal);
      const intOn = ofNominal(t.interruptionStartPct, nominal);
      const hyst = ofNominal(t.voltageHysteresisPct, nominal);
      // A sag spans interruption levels without ending (the voltage never recovered), but only a
      // value between the two thresholds starts one: a clean drop to zero is an interruption only.
      this.step(state, events, reading, ms, {
        kind: "voltageSag",
        phase,
        value: voltage,
        starts: pct < t.sagStartPct && pct >= t.interruptionStartPct,
        continues: voltage < sagOn + hyst,
        threshold: sagOn,
        worse: (a, b) => a < b,
      });
      this.step(state, events, reading, ms, {
        kind: "voltageSwell",
        phase,
        value: voltage,
        starts: pct > t.swellStartPct,
        continues: voltage > swellOn - hyst,
        threshold: swellOn,
        worse: (a, b) => a > b,
      });
      this.step(state, events, reading, ms, {
        kind: "voltageInterruption",
        phase,
        value: voltage,
        starts: pct < t.interruptionStartPct,
        continues: voltage < intOn + hyst,
        threshold: intOn,
        worse: (a, b) => a < b,
      });
    }
    const frequency = v.frequencyHz;
    if (frequency !== undefined) {
      const deviation = Math.abs(frequency - t.nominalFrequencyHz);
      this.step(state, events, reading, ms, {
        kind: "frequencyDeviation",
        phase: null,
        value: frequency,
        // No meaningful frequency without voltage: an interrupted supply reads 0 Hz on most meters.
        starts: deviation > t.frequencyBandHz && frequency > 0,
        continues: deviation > t.frequencyBandHz - t.frequencyHysteresisHz && frequency > 0,
        threshold:
          frequency > t.nominalFrequencyHz
            ? t.nominalFrequencyHz + t.frequencyBandHz
            : t.nominalFrequencyHz - t.frequencyBandHz,
        worse: (a, b) => Math.abs(a - t.nominalFrequencyHz) > Math.abs(b - t.nominalFrequencyHz),
      });
    }

    // A cumulative register only rises on a healthy meter: a drop means it was replaced or reset,
    // and the cloud must not bill the difference as negative consumption.
    for (const [name, key] of [
      ["importEnergyKwh", "lastImportKwh"],
      ["exportEnergyKwh", "lastExportKwh"],
    ] as const) {
      const value = v[name];
      if (value === undefined) continue;
      const previous = state[key];
      if (previous !== null && value < previous) {
        events.push({
          eventId: eventIdOf(reading.meterId, "energyRegisterBackwards", name, reading.ts),
          meterId: reading.meterId,
          kind: "energyRegisterBackwards",
          state: "instant",
          phase: null,
          value,
          threshold: previous,
          ts: reading.ts,
          durationMs: null,
          clock: reading.clock,
        });
      }
      state[key] = value;
    }
    return events;
  }

  /** Reports meters silent for longer than their `offlineAfterMs`. `nowMs`: wall time. */
  tick(nowMs: number): DetectedEvent[] {
    const events: DetectedEvent[] = [];
    for (const [meterId, state] of this.meters) {
      if (state.offline) continue;
      const lastMs = state.lastReadingMs ?? state.registeredMs;
      if (nowMs - lastMs < this.thresholdsOf(meterId).offlineAfterMs) continue;
      state.offline = true;
      state.offlineSinceMs = lastMs;
      state.offlineSinceTs = new Date(lastMs).toISOString();
      state.offlineEventId = eventIdOf(meterId, "meterOffline", null, state.offlineSinceTs);
      events.push({
        eventId: state.offlineEventId,
        meterId,
        kind: "meterOffline",
        state: "start",
        phase: null,
        value: null,
        threshold: null,
        ts: state.offlineSinceTs,
        durationMs: null,
        clock: "synced",
      });
    }
    return events;
  }

  /** Faults currently active (started, not ended), for the status page. */
  active(): Array<{ meterId: string; kind: EventKind; phase: Phase | null; sinceTs: string; extreme: number }> {
    const out: Array<{ meterId: string; kind: EventKind; phase: Phase | null; sinceTs: string; extreme: number }> = [];
    for (const [meterId, state] of this.meters) {
      for (const c of state.conditions.values()) {
        if (c.active) out.push({ meterId, kind: c.kind, phase: c.phase, sinceTs: c.startTs, extreme: c.extreme });
      }
      if (state.offline)
        out.push({ meterId, kind: "meterOffline", phase: null, sinceTs: state.offlineSinceTs, extreme: 0 });
    }
    return out;
  }

  private step(
    state: MeterState,
    events: DetectedEvent[],
    reading: NewReading | Reading,
    ms: number,
    rule: {
      kind: ConditionKind;
      phase: Phase | null;
      value: number;
      starts: boolean;
      continues: boolean;
      threshold: number;
      worse: (a: number, b: number) => boolean;
    },
  ): void {
    const key = `${rule.kind}:${rule.phase ?? "-"}`;
    const t = this.thresholdsOf(reading.meterId);
    const condition = state.conditions.get(key);
    if (condition === undefined) {
      if (!rule.starts) return;
      const fresh: Condition = {
        kind: rule.kind,
        phase: rule.phase,
        active: false,
        startMs: ms,
        startTs: reading.ts,
        extreme: rule.value,
        threshold: rule.threshold,
        clock: reading.clock,
      };
      state.conditions.set(key, fresh);
      if (t.minDurationMs <= 0) this.begin(fresh, events, reading.meterId);
      return;
    }
    if (!condition.active) {
      // Pending: every reading until the minimum duration must still meet the start condition.
      if (!rule.starts) {
        state.conditions.delete(key);
        return;
      }
      if (rule.worse(rule.value, condition.extreme)) condition.extreme = rule.value;
      if (ms - condition.startMs >= t.minDurationMs) this.begin(condition, events, reading.meterId);
      return;
    }
    if (rule.continues) {
      if (rule.worse(rule.value, condition.extreme)) condition.extreme = rule.value;
      return;
    }
    state.conditions.delete(key);
    events.push({
      eventId: eventIdOf(reading.meterId, condition.kind, condition.phase, condition.startTs),
      meterId: reading.meterId,
      kind: condition.kind,
      state: "end",
      phase: condition.phase,
      value: condition.extreme,
      threshold: condition.threshold,
      ts: reading.ts,
      durationMs: Math.max(0, Math.round(ms - condition.startMs)),
      clock: reading.clock === "synced" && condition.clock === "synced" ? "synced" : "unsynced",
    });
  }

  private begin(condition: Condition, events: DetectedEvent[], meterId: string): void {
    condition.active = true;
    events.push({
      eventId: eventIdOf(meterId, condition.kind, condition.phase, condition.startTs),
      meterId,
      kind: condition.kind,
      state: "start",
      phase: condition.phase,
      value: condition.extreme,
      threshold: condition.threshold,
      ts: condition.startTs,
      durationMs: null,
      clock: condition.clock,
    });
  }
}

/** `pct` % of `nominal`, rounded to the millivolt so thresholds read as written (207, not 206.99999999999997). */
function ofNominal(pct: number, nominal: number): number {
  return Math.round(pct * nominal * 10) / 1_000;
}

function newMeterState(nowMs: number): MeterState {
  return {
    lastReadingMs: null,
    registeredMs: nowMs,
    offline: false,
    offlineSinceMs: 0,
    offlineSinceTs: "",
    offlineEventId: "",
    lastImportKwh: null,
    lastExportKwh: null,
    conditions: new Map(),
  };
}

/** 32 hex characters: stable for the same fault, within the wire's 64-character limit. */
export function eventIdOf(meterId: string, kind: string, detail: string | null, startTs: string): string {
  return createHash("sha256")
    .update(`${meterId}\0${kind}\0${detail ?? ""}\0${startTs}`)
    .digest("hex")
    .slice(0, 32);
}
