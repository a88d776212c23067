import { EdgemeterError } from "@edgemeter/shared/core";
import { type RegisterDef, type RegisterType, WORDS_PER_TYPE } from "../profiles/profileTypes.js";

/**
 * Register words ⇄ numbers. Pure: no I/O, no clock. Words are 16-bit unsigned integers
 * as Modbus carries them; within a word the bytes are big-endian (Modbus spec §4.2), only
 * the order of words varies between meters.
 */

export type DecodeOutcome = { ok: true; value: number } | { ok: false; code: string; message: string };

/** Error codes the decoder reports per register (ReadingError.code on the wire). */
export const DECODE_ERROR_CODES = {
  /** The response held fewer words than the request covers. */
  shortResponse: "decode.shortResponse",
  /** A word was not an integer in 0..0xFFFF. */
  badWord: "decode.badWord",
  /** The meter sent one of the profile's `invalid` patterns ("not available"). */
  notAvailable: "decode.notAvailable",
  /** A float register held NaN or ±Infinity. */
  notFinite: "decode.notFinite",
} as const;

const INTEGER_BITS: Readonly<Record<Exclude<RegisterType, "float32" | "float64">, { bits: number; signed: boolean }>> =
  {
    int16: { bits: 16, signed: true },
    uint16: { bits: 16, signed: false },
    int32: { bits: 32, signed: true },
    uint32: { bits: 32, signed: false },
    int64: { bits: 64, signed: true },
    uint64: { bits: 64, signed: false },
  };

function describe(register: RegisterDef): string {
  return `${register.measurement} (${register.fn} 0x${register.address.toString(16).toUpperCase().padStart(4, "0")})`;
}

/** Words most significant first, whatever order the meter sends them in. */
function toLogicalOrder(register: RegisterDef, words: readonly number[]): readonly number[] {
  return register.wordOrder === "little" ? [...words].reverse() : words;
}

function toHex(words: readonly number[]): string {
  return `0x${words.map((w) => w.toString(16).toUpperCase().padStart(4, "0")).join("")}`;
}

/**
 * `scale` is usually a power of ten below one (0.1, 0.001): dividing by the exact integer
 * 10^k gives the correctly rounded decimal (2345 / 10 = 234.5) where multiplying by the
 * inexact 0.1 can give 234.50000000000003.
 */
function inverseScale(scale: number): number | null {
  const inverse = 1 / scale;
  const rounded = Math.round(inverse);
  return Math.abs(inverse) > 1 && Math.abs(inverse - rounded) < 1e-9 * Math.abs(inverse) ? rounded : null;
}

function applyScale(raw: number, scale: number): number {
  if (scale === 1) return raw;
  const divisor = inverseScale(scale);
  return divisor === null ? raw * scale : raw / divisor;
}

function removeScale(value: number, scale: number): number {
  if (scale === 1) return value;
  const multiplier = inverseScale(scale);
  return multiplier === null ? value / scale : value * multiplier;
}

/**
 * The shortest decimal that is the same float32: a meter showing 230.1 sends the float32
 * nearest to 230.1, which as a double is 230.10000610351562; reporting 230.1 loses nothing
 * the meter knew and keeps telemetry readable.
 */
function shortestFloat32(f: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}

function wordsToBigInt(words: readonly number[]): bigint {
  let result = 0n;
  for (const word of words) result = (result << 16n) | BigInt(word);
  return result;
}

function rawNumber(type: RegisterType, logical: readonly number[]): number {
  switch (type) {
    case "float32": {
      const view = new DataView(new ArrayBuffer(4));
      view.setUint16(0, logical[0] ?? 0);
      view.setUint16(2, logical[1] ?? 0);
      const f = view.getFloat32(0);
      return Number.isFinite(f) ? shortestFloat32(f) : f;
    }
    case "float64": {
      const view = new DataView(new ArrayBuffer(8));
      logical.forEach((word, i) => {
        view.setUint16(i * 2, word);
      });
      return view.getFloat64(0);
    }
    case "int16":
    case "uint16":
    case "int32":
    case "uint32":
    case "int64":
    case "uint64": {
      const { bits, signed } = INTEGER_BITS[type];
      const unsigned = wordsToBigInt(logical);
      // Above 2^53 a 64-bit counter loses its last digits as a JS number; no meter register
      // in engineering units (Wh, varh) gets there in a meter's lifetime.
      return Number(signed ? BigInt.asIntN(bits, unsigned) : unsigned);
    }
  }
}

/**
 * Decodes one register from exactly its words (as they came off the wire). A `invalid`
 * pattern or a non-finite float gives an error outcome, never a number.
 */
export function decodeRegister(register: RegisterDef, words: readonly number[]): DecodeOutcome {
  const expected = WORDS_PER_TYPE[register.type];
  if (words.length !== expected) {
    return {
      ok: false,
      code: DECODE_ERROR_CODES.shortResponse,
      message: `${describe(register)}: got ${words.length} of ${expected} registers`,
    };
  }
  if (words.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffff)) {
    return {
      ok: false,
      code: DECODE_ERROR_CODES.badWord,
      message: `${describe(register)}: register words must be integers 0..0xFFFF, got ${JSON.stringify(words)}`,
    };
  }
  const logical = toLogicalOrder(register, words);
  if (register.invalid.length > 0) {
    const hex = toHex(logical);
    if (register.invalid.includes(hex)) {
      return {
        ok: false,
        code: DECODE_ERROR_CODES.notAvailable,
        message: `${describe(register)}: meter reports "not available" (${hex})`,
      };
    }
  }
  const raw = rawNumber(register.type, logical);
  const value = applyScale(raw, register.scale);
  if (!Number.isFinite(value)) {
    return {
      ok: false,
      code: DECODE_ERROR_CODES.notFinite,
      message: `${describe(register)}: ${register.type} ${toHex(logical)} is ${raw}, not a finite number`,
    };
  }
  return { ok: true, value };
}

/** The smallest and largest value (in the measurement's unit) a register can carry. */
export function registerValueRange(register: RegisterDef): { min: number; max: number } {
  let min: number;
  let max: number;
  switch (register.type) {
    case "float32":
      min = -3.4028234663852886e38;
      max = 3.4028234663852886e38;
      break;
    case "float64":
      min = -Number.MAX_VALUE;
      max = Number.MAX_VALUE;
      break;
    case "int16":
    case "uint16":
    case "int32":
    case "uint32":
    case "int64":
    case "uint64": {
      const { bits, signed } = INTEGER_BITS[register.type];
      min = signed ? -(2 ** (bits - 1)) : 0;
      max = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      break;
    }
  }
  const a = applyScale(min, register.scale);
  const b = applyScale(max, register.scale);
  return { min: Math.min(a, b), max: Math.max(a, b) };
}

/**
 * The words a meter would send for `value` (in the measurement's unit): the inverse of
 * decodeRegister, for the simulator and test fixtures. Integers are rounded to the nearest
 * raw step. Throws EdgemeterError("internal.valueOutOfRange") when the value does not fit.
 */
export function encodeValue(register: RegisterDef, value: number): number[] {
  if (!Number.isFinite(value)) {
    throw new EdgemeterError("internal.valueOutOfRange", `${describe(register)}: cannot encode ${value}`);
  }
  const raw = removeScale(value, register.scale);
  let logical: number[];
  switch (register.type) {
    case "float32": {
      const view = new DataView(new ArrayBuffer(4));
      view.setFloat32(0, raw);
      if (!Number.isFinite(view.getFloat32(0))) {
        throw new EdgemeterError("internal.valueOutOfRange", `${describe(register)}: ${value} overflows a float32`);
      }
      logical = [view.getUint16(0), view.getUint16(2)];
      break;
    }
    case "float64": {
      const view = new DataView(new ArrayBuffer(8));
      view.setFloat64(0, raw);
      logical = [0, 1, 2, 3].map((i) => view.getUint16(i * 2));
      break;
    }
    case "int16":
    case "uint16":
    case "int32":
    case "uint32":
    case "int64":
    case "uint64": {
      const { bits, signed } = INTEGER_BITS[register.type];
      const rounded = BigInt(Math.round(raw));
      const min = signed ? -(1n << BigInt(bits - 1)) : 0n;
      const max = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
      if (rounded < min || rounded > max) {
        throw new EdgemeterError(
          "internal.valueOutOfRange",
          `${describe(register)}: ${value} (raw ${rounded}) does not fit a ${register.type}`,
        );
      }
      let unsigned = BigInt.asUintN(bits, rounded);
      const words = bits / 16;
      logical = new Array<number>(words);
      for (let i = words - 1; i >= 0; i--) {
        logical[i] = Number(unsigned & 0xffffn);
        unsigned >>= 16n;
      }
      break;
    }
  }
  return register.wordOrder === "little" ? logical.reverse() : logical;
}
