import { EdgemeterError } from "@edgemeter/shared";
import { describe, expect, it } from "vitest";
import { loadProfile } from "../profiles/loadProfile.js";
import { type MeterProfile, parseProfileYaml, type RegisterType, WORDS_PER_TYPE } from "../profiles/profileSchema.js";
import { decodeResponse, planReads, splitRequest } from "./readPlan.js";
import { encodeValue } from "./registerCodec.js";

function profileWith(
  maxRegistersPerRequest: number,
  maxGap: number,
  registers: [string, number, "input" | "holding", RegisterType][],
): MeterProfile {
  const lines = registers.map(
    ([measurement, address, fn, type]) =>
      `  - { measurement: ${measurement}, address: ${address}, fn: ${fn}, type: ${type}, wordOrder: big }`,
  );
  return parseProfileYaml(
    `id: plan-test
manufacturer: Test
model: T
datasheet: https://example.com/t.pdf
addressing: 0-based
maxRegistersPerRequest: ${maxRegistersPerRequest}
maxGap: ${maxGap}
registers:
${lines.join("\n")}
`,
    "plan-test.yaml",
  );
}

const summary = (profile: MeterProfile) =>
  planReads(profile).map((r) => [r.fn, r.address, r.count, r.registers.map((x) => x.measurement)]);

describe("planReads", () => {
  it("reads the SDM630 in five requests, within 80 registers and 10-register gaps", () => {
    const profile = loadProfile("sdm630");
    const plan = planReads(profile);
    expect(plan.map((r) => [r.address, r.count])).toEqual([
      [0x0000, 18],
      [0x001e, 6],
      [0x0034, 28],
      [0x00c8, 6],
      [0x00e0, 2],
    ]);
    expect(plan.flatMap((r) => r.registers).length).toBe(profile.registers.length);
    for (const request of plan) {
      expect(request.count).toBeLessThanOrEqual(profile.maxRegistersPerRequest);
      request.registers.forEach((register, i) => {
        const previous = request.registers[i - 1];
        if (previous) expect(register.address - (previous.address + 2)).toBeLessThanOrEqual(profile.maxGap);
      });
    }
  });

  it("merges across a gap of exactly maxGap and not maxGap + 1", () => {
    const profile = profileWith(125, 3, [
      ["voltageL1V", 0, "input", "uint16"],
      ["voltageL2V", 4, "input", "uint16"], // gap of 3 (1, 2, 3)
      ["voltageL3V", 9, "input", "uint16"], // gap of 4 (5..8)
    ]);
    expect(summary(profile)).toEqual([
      ["input", 0, 5, ["voltageL1V", "voltageL2V"]],
      ["input", 9, 1, ["voltageL3V"]],
    ]);
  });

  it("never exceeds maxRegistersPerRequest and never splits a register", () => {
    const profile = profileWith(6, 10, [
      ["voltageL1V", 0, "input", "float32"],
      ["voltageL2V", 2, "input", "float32"],
      ["voltageL3V", 4, "input", "float32"],
      ["currentL1A", 6, "input", "float64"],
      ["currentL2A", 10, "input", "float32"],
    ]);
    expect(summary(profile)).toEqual([
      ["input", 0, 6, ["voltageL1V", "voltageL2V", "voltageL3V"]],
      ["input", 6, 6, ["currentL1A", "currentL2A"]],
    ]);
  });

  it("keeps input and holding registers in separate requests", () => {
    const profile = profileWith(125, 10, [
      ["voltageL1V", 0, "holding", "uint16"],
      ["voltageL2V", 1, "input", "uint16"],
      ["voltageL3V", 2, "holding", "uint16"],
    ]);
    expect(summary(profile)).toEqual([
      ["input", 1, 1, ["voltageL2V"]],
      ["holding", 0, 3, ["voltageL1V", "voltageL3V"]],
    ]);
  });

  it("covers every register exactly once for many random layouts", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const types: RegisterType[] = ["uint16", "int32", "float32", "uint64"];
    const names = ["voltageL1V", "voltageL2V", "voltageL3V", "currentL1A", "currentL2A", "currentL3A", "frequencyHz"];
    for (let round = 0; round < 200; round++) {
      let address = 0;
      const registers = names.map((name): [string, number, "input", RegisterType] => {
        const type = types[Math.floor(random() * types.length)] ?? "uint16";
        address += Math.floor(random() * 8);
        const entry: [string, number, "input", RegisterType] = [name, address, "input", type];
        address += WORDS_PER_TYPE[type];
        return entry;
      });
      const maxRegisters = 4 + Math.floor(random() * 20);
      const maxGap = Math.floor(random() * 6);
      const profile = profileWith(maxRegisters, maxGap, registers);
      const plan = planReads(profile);
      expect(plan.flatMap((r) => r.registers.map((x) => x.measurement)).sort()).toEqual([...names].sort());
      for (const request of plan) {
        expect(request.count).toBeLessThanOrEqual(maxRegisters);
        for (const register of request.registers) {
          expect(register.address).toBeGreaterThanOrEqual(request.address);
          expect(register.address + WORDS_PER_TYPE[register.type]).toBeLessThanOrEqual(request.address + request.count);
        }
      }
      // Greedy is minimal: two neighbouring requests could never have been one.
      for (let i = 1; i < plan.length; i++) {
        const a = plan[i - 1];
        const b = plan[i];
        if (!a || !b) continue;
        const gap = b.address - (a.address + a.count);
        const merged = b.address + b.count - a.address;
        expect(gap > maxGap || merged > maxRegisters).toBe(true);
      }
    }
  });
});

describe("splitRequest", () => {
  it("halves a request into two tight requests that decode the same values", () => {
    const profile = loadProfile("sdm630");
    const request = planReads(profile)[2];
    if (!request) throw new Error("sdm630 plan has a third request");
    const [first, second] = splitRequest(request);
    expect([first.address, first.count, first.registers.length]).toEqual([0x0034, 0x0048 - 0x0034, 5]);
    expect([second.address, second.count, second.registers.length]).toEqual([0x0048, 8, 4]);

    const words = new Array<number>(request.count).fill(0);
    request.registers.forEach((register, i) => {
      words.splice(register.address - request.address, 2, ...encodeValue(register, 100 + i));
    });
    const whole = decodeResponse(request, words);
    const halves = {
      ...decodeResponse(first, words.slice(0, first.count)).values,
      ...decodeResponse(second, words.slice(second.address - request.address)).values,
    };
    expect(halves).toEqual(whole.values);
    expect(Object.keys(whole.values).length).toBe(9);
  });

  it("refuses to split a single register", () => {
    const request = planReads(loadProfile("sdm630"))[4];
    if (!request) throw new Error("sdm630 plan has a fifth request");
    expect(() => splitRequest(request)).toThrow(EdgemeterError);
    expect(() => splitRequest(request)).toThrow(/cannot split a read of one register/);
  });

  it("reports a short answer per register instead of inventing values", () => {
    const request = planReads(loadProfile("sdm630"))[0];
    if (!request) throw new Error("sdm630 plan has a first request");
    const result = decodeResponse(request, [0x4366, 0x199a, 0x4367]);
    expect(result.values).toEqual({ voltageL1V: 230.1 });
    expect(result.errors.length).toBe(8);
    expect(result.errors[0]).toEqual({
      code: "decode.shortResponse",
      message: "voltageL2V (input 0x0002): got 1 of 2 registers",
    });
  });
});
