import type { MeasurementName } from "@edgemeter/shared/core";

/**
 * A loaded meter profile as data: what decoding and read planning need, without the YAML
 * parser and the zod schema that load and check it (profileSchema.ts), so that a process
 * that only decodes (the gateway daemon) keeps those out of its heap (issue 4 footprint).
 */

export const REGISTER_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"] as const;
export type RegisterType = (typeof REGISTER_TYPES)[number];

/** How many 16-bit Modbus registers (words) one value of each type occupies. */
export const WORDS_PER_TYPE: Readonly<Record<RegisterType, 1 | 2 | 4>> = {
  int16: 1,
  uint16: 1,
  int32: 2,
  uint32: 2,
  int64: 4,
  uint64: 4,
  float32: 2,
  float64: 4,
};

export type RegisterFn = "input" | "holding";

/** Modbus application protocol v1.1b3 §6.3/§6.4: a read asks for 1 to 125 registers. */
export const MODBUS_MAX_REGISTERS_PER_REQUEST = 125;

/** One measurement's register, as the loader hands it out: addresses are always wire (PDU) addresses. */
export interface RegisterDef {
  readonly measurement: MeasurementName;
  /** Wire (PDU, 0-based) address of the first word, whatever `addressing` the file used. */
  readonly address: number;
  readonly fn: RegisterFn;
  readonly type: RegisterType;
  /** "big": high word first (Modbus convention); "little": low word first. Bytes in a word are always big-endian. */
  readonly wordOrder: "big" | "little";
  /** Multiplies the raw number to get the measurement's unit (e.g. 0.001 for Wh → kWh). */
  readonly scale: number;
  /**
   * Raw patterns the meter uses for "not available", normalised to `0x` + 4 upper-case hex
   * digits per word, most significant word first (the value as the datasheet writes it).
   */
  readonly invalid: readonly string[];
}

export interface MeterProfile {
  readonly id: string;
  readonly manufacturer: string;
  readonly model: string;
  /** URL of the protocol document the register addresses come from. */
  readonly datasheet: string;
  readonly maxRegistersPerRequest: number;
  /** Registers that may be read and thrown away to merge two reads into one request. */
  readonly maxGap: number;
  /** Sorted by fn, then address. */
  readonly registers: readonly RegisterDef[];
  /** Where the profile came from (file path), for error messages. */
  readonly source: string;
}
