import { decodeRegister, encodeValue, registerValueRange } from "../decoding/registerCodec.js";
import { type MeterProfile, type RegisterFn, WORDS_PER_TYPE } from "../profiles/profileSchema.js";
import { MeterModel, type MeterModelOptions, type MeterValues } from "./meterModel.js";
import { applyScenarios, type PowerQualityScenario } from "./scenarios.js";

export interface MeterSnapshot {
  /** When this state was computed (clock ms); it is served until the next tick. */
  atMs: number;
  values: MeterValues;
}

/** Modbus exception codes (Modbus application protocol v1.1b3 §7). */
export const MODBUS_EXCEPTION = { illegalDataAddress: 2, illegalDataValue: 3 } as const;

export type RegisterReadResult = { ok: true; words: number[] } | { ok: false; exceptionCode: 2 | 3 };

interface AddressRange {
  start: number;
  /** Exclusive. */
  end: number;
}

/**
 * One simulated meter behind a unit id: the model's state, quantised through the
 * profile's registers so the snapshot holds exactly what a reader decodes, and the words
 * served for it.
 */
export class SimulatedMeter {
  private readonly model: MeterModel;
  private readonly words: Record<RegisterFn, Map<number, number>> = { input: new Map(), holding: new Map() };
  private readonly readable: Record<RegisterFn, AddressRange[]>;
  private readonly ring: MeterSnapshot[] = [];
  private current: MeterSnapshot;
  private scenarios: readonly PowerQualityScenario[] = [];

  constructor(
    readonly unitId: number,
    readonly profile: MeterProfile,
    modelOptions: MeterModelOptions,
    startMs: number,
    private readonly historyLimit: number,
    private readonly behaviour: { refuseGapReads: boolean } = { refuseGapReads: false },
  ) {
    this.model = new MeterModel(modelOptions, startMs);
    this.readable = { input: readableRanges(profile, "input"), holding: readableRanges(profile, "holding") };
    this.current = this.serve(startMs, this.model.valuesAt(startMs));
  }

  /** Moves the meter to `atMs`; a clock that has not advanced changes nothing. Returns whether it moved. */
  tick(atMs: number): boolean {
    if (atMs <= this.current.atMs) return false;
    const previous = this.current.values;
    this.current = this.serve(atMs, this.model.advance(atMs, previous.activePowerW, previous.reactivePowerVar));
    return true;
  }

  /** Voltage/frequency events to play from now on (replaces earlier ones); applied from the next tick. */
  setScenarios(scenarios: readonly PowerQualityScenario[]): void {
    this.scenarios = [...scenarios];
  }

  snapshot(): MeterSnapshot {
    return this.current;
  }

  /** Served snapshots, oldest first, at most historyLimit. */
  history(): MeterSnapshot[] {
    return [...this.ring];
  }

  /**
   * Answers a read from the current snapshot. Addresses the profile does not cover give
   * exception 2. Holes of up to maxGap registers between two of the profile's registers
   * read as 0 (planReads merges across them, as meters that answer such reads allow);
   * a read above the meter's documented maximum gives exception 3, as the Modbus spec asks
   * for a quantity out of range.
   */
  read(fn: RegisterFn, address: number, count: number): RegisterReadResult {
    if (count < 1 || count > this.profile.maxRegistersPerRequest) {
      return { ok: false, exceptionCode: MODBUS_EXCEPTION.illegalDataValue };
    }
    const end = address + count;
    const inside = this.readable[fn].some((range) => address >= range.start && end <= range.end);
    if (!inside) return { ok: false, exceptionCode: MODBUS_EXCEPTION.illegalDataAddress };
    if (this.behaviour.refuseGapReads) {
      for (let a = address; a < end; a++) {
        if (!this.words[fn].has(a)) return { ok: false, exceptionCode: MODBUS_EXCEPTION.illegalDataAddress };
      }
    }
    const map = this.words[fn];
    const words: number[] = [];
    for (let a = address; a < end; a++) words.push(map.get(a) ?? 0);
    return { ok: true, words };
  }

  private serve(atMs: number, model: MeterValues): MeterSnapshot {
    const raw = this.scenarios.length > 0 ? applyScenarios(model, this.scenarios, atMs) : model;
    const values = { ...raw };
    this.words.input.clear();
    this.words.holding.clear();
    for (const register of this.profile.registers) {
      const { min, max } = registerValueRange(register);
      const encoded = encodeValue(register, Math.min(max, Math.max(min, raw[register.measurement])));
      const decoded = decodeRegister(register, encoded);
      // Should the words happen to match an `invalid` pattern, a reader sees "missing";
      // the snapshot then keeps the model's value for the record.
      if (decoded.ok) values[register.measurement] = decoded.value;
      encoded.forEach((word, i) => {
        this.words[register.fn].set(register.address + i, word);
      });
    }
    const snapshot = { atMs, values };
    this.ring.push(snapshot);
    if (this.ring.length > this.historyLimit) this.ring.splice(0, this.ring.length - this.historyLimit);
    return snapshot;
  }
}

/** The profile's registers of one function, merged where the hole between them is at most maxGap. */
function readableRanges(profile: MeterProfile, fn: RegisterFn): AddressRange[] {
  const ranges: AddressRange[] = [];
  for (const register of profile.registers.filter((r) => r.fn === fn).sort((a, b) => a.address - b.address)) {
    const end = register.address + WORDS_PER_TYPE[register.type];
    const last = ranges[ranges.length - 1];
    if (last !== undefined && register.address - last.end <= profile.maxGap) last.end = Math.max(last.end, end);
    else ranges.push({ start: register.address, end });
  }
  return ranges;
}
