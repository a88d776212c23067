import { describe, expect, it } from "vitest";
import { loadProfile } from "../profiles/loadProfile.js";
import type { RegisterDef, RegisterType } from "../profiles/profileSchema.js";
import { decodeResponse, planReads } from "./readPlan.js";
import { DECODE_ERROR_CODES, decodeRegister, encodeValue, registerValueRange } from "./registerCodec.js";

function reg(type: RegisterType, extra: Partial<RegisterDef> = {}): RegisterDef {
  return {
    measurement: "activePowerW",
    address: 0,
    fn: "holding",
    type,
    wordOrder: "big",
    scale: 1,
    invalid: [],
    ...extra,
  };
}

function decoded(register: RegisterDef, words: number[]): number | string {
  const outcome = decodeRegister(register, words);
  return outcome.ok ? outcome.value : outcome.code;
}

describe("SDM630 fixture", () => {
  // Words as an SDM630 sends them: IEEE 754 float32, high word first (hex worked out by
  // hand from the values, independently of encodeValue).
  const FIXTURE: Record<number, [number, number, number]> = {
    0: [0x4366, 0x199a, 230.1], // Phase 1 line to neutral volts
    2: [0x4367, 0x6666, 231.4],
    4: [0x4365, 0xcccd, 229.8],
    6: [0x4086, 0x6666, 4.2], // Phase 1 current
    8: [0x3fc0, 0x0000, 1.5],
    10: [0x3f40, 0x0000, 0.75],
    12: [0x4466, 0x2000, 920.5], // Phase 1 power
    30: [0x3f73, 0x3333, 0.95], // Phase 1 power factor
    32: [0xbf00, 0x0000, -0.5],
    70: [0x4248, 0x147b, 50.02], // Frequency
    72: [0x4640, 0xe6ae, 12345.67], // Import kWh
    74: [0x0000, 0x0000, 0], // Export kWh
  };

  it("decodes datasheet-layout register words to the values the meter displays", () => {
    const profile = loadProfile("sdm630");
    const decoded: Record<string, number> = {};
    for (const request of planReads(profile)) {
      const words: number[] = [];
      for (let i = 0; i < request.count; i += 2) {
        const [high, low] = FIXTURE[request.address + i] ?? [0x7fc0, 0x0000]; // NaN where the fixture has nothing
        words.push(high, low);
      }
      const result = decodeResponse(request, words.slice(0, request.count));
      Object.assign(decoded, result.values);
      for (const error of result.errors) expect(error.code).toBe(DECODE_ERROR_CODES.notFinite);
    }
    expect(decoded).toEqual({
      voltageL1V: 230.1,
      voltageL2V: 231.4,
      voltageL3V: 229.8,
      currentL1A: 4.2,
      currentL2A: 1.5,
      currentL3A: 0.75,
      activePowerL1W: 920.5,
      powerFactorL1: 0.95,
      powerFactorL2: -0.5,
      frequencyHz: 50.02,
      importEnergyKwh: 12345.67,
      exportEnergyKwh: 0,
    });
  });
});

describe("decodeRegister", () => {
  it("reads big and little word orders", () => {
    expect(decoded(reg("uint32"), [0x0001, 0x0002])).toBe(0x00010002);
    expect(decoded(reg("uint32", { wordOrder: "little" }), [0x0002, 0x0001])).toBe(0x00010002);
    expect(decoded(reg("float32", { wordOrder: "little" }), [0x199a, 0x4366])).toBe(230.1);
    expect(decoded(reg("int64", { wordOrder: "little" }), [0x0004, 0x0003, 0x0002, 0x0001])).toBe(0x0001000200030004);
  });

  it("decodes every integer type, negative values included", () => {
    expect(decoded(reg("int16"), [0xffff])).toBe(-1);
    expect(decoded(reg("int16"), [0x8000])).toBe(-32768);
    expect(decoded(reg("uint16"), [0xffff])).toBe(65535);
    expect(decoded(reg("int32"), [0xffff, 0xfffe])).toBe(-2);
    expect(decoded(reg("int32"), [0x8000, 0x0000])).toBe(-2147483648);
    expect(decoded(reg("uint32"), [0xffff, 0xfffe])).toBe(4294967294);
    expect(decoded(reg("int64"), [0xffff, 0xffff, 0xffff, 0xfc18])).toBe(-1000);
    expect(decoded(reg("int64"), [0x0000, 0x0123, 0x4567, 0x89ab])).toBe(0x0123456789ab);
    expect(decoded(reg("uint64"), [0x0000, 0x0000, 0x0001, 0x0000])).toBe(65536);
    expect(decoded(reg("uint64"), [0x001f, 0xffff, 0xffff, 0xffff])).toBe(Number.MAX_SAFE_INTEGER);
    expect(decoded(reg("float64"), [0xc093, 0x4a45, 0x6d5c, 0xfaad])).toBe(-1234.5678);
  });

  it("applies scale without binary noise", () => {
    expect(decoded(reg("uint16", { scale: 0.1 }), [2345])).toBe(234.5);
    expect(decoded(reg("uint32", { scale: 0.001 }), [0x0012, 0xd687])).toBe(1234.567);
    expect(decoded(reg("int16", { scale: 0.01 }), [0xffff])).toBe(-0.01);
    expect(decoded(reg("uint16", { scale: 10 }), [42])).toBe(420);
    expect(decoded(reg("uint16", { scale: 0.25 }), [3])).toBe(0.75);
  });

  it("turns invalid markers and non-finite floats into errors, never numbers", () => {
    const allOnes = reg("uint32", { invalid: ["0xFFFFFFFF"] });
    expect(decodeRegister(allOnes, [0xffff, 0xffff])).toEqual({
      ok: false,
      code: DECODE_ERROR_CODES.notAvailable,
      message: 'activePowerW (holding 0x0000): meter reports "not available" (0xFFFFFFFF)',
    });
    expect(decoded(allOnes, [0xffff, 0xfffe])).toBe(4294967294);
    const int16Marker = reg("int16", { invalid: ["0x8000"] });
    expect(decoded(int16Marker, [0x8000])).toBe(DECODE_ERROR_CODES.notAvailable);
    // Patterns are written most significant word first, whatever the wire order.
    const littleMarker = reg("uint32", { wordOrder: "little", invalid: ["0x8000FFFF"] });
    expect(decoded(littleMarker, [0xffff, 0x8000])).toBe(DECODE_ERROR_CODES.notAvailable);
    expect(decoded(reg("float32"), [0x7fc0, 0x0000])).toBe(DECODE_ERROR_CODES.notFinite);
    expect(decoded(reg("float32"), [0x7f80, 0x0000])).toBe(DECODE_ERROR_CODES.notFinite);
    expect(decoded(reg("float32"), [0x4366])).toBe(DECODE_ERROR_CODES.shortResponse);
    expect(decoded(reg("uint16"), [70000])).toBe(DECODE_ERROR_CODES.badWord);
  });
});

describe("encodeValue", () => {
  it("is the inverse of decoding for every type and word order", () => {
    const cases: [RegisterType, number, number][] = [
      ["int16", -1234, 1],
      ["uint16", 230.1, 0.1],
      ["int32", -123456.7, 0.1],
      ["uint32", 1234.567, 0.001],
      ["int64", -98765.4321, 0.0001],
      ["uint64", 9007199254.74099, 0.000001],
      ["float32", 230.1, 1],
      ["float64", -1234.5678, 1],
    ];
    for (const [type, value, scale] of cases) {
      for (const wordOrder of ["big", "little"] as const) {
        const register = reg(type, { scale, wordOrder });
        expect(decoded(register, encodeValue(register, value)), `${type} ${wordOrder}`).toBe(value);
      }
    }
    expect(encodeValue(reg("int32", { wordOrder: "little" }), -2)).toEqual([0xfffe, 0xffff]);
    expect(encodeValue(reg("float32"), 230.1)).toEqual([0x4366, 0x199a]);
  });

  it("refuses values that do not fit the register", () => {
    expect(() => encodeValue(reg("uint16"), -1)).toThrow(/does not fit a uint16/);
    expect(() => encodeValue(reg("int16", { scale: 0.1 }), 3276.8)).toThrow(/does not fit a int16/);
    expect(() => encodeValue(reg("float32"), 1e39)).toThrow(/overflows a float32/);
    expect(() => encodeValue(reg("float32"), Number.NaN)).toThrow(/cannot encode NaN/);
    expect(registerValueRange(reg("int16", { scale: 0.1 }))).toEqual({ min: -3276.8, max: 3276.7 });
  });
});
