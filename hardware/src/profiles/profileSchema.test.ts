import { readFileSync } from "node:fs";
import path from "node:path";
import { EdgemeterError, isMeasurementName } from "@edgemeter/shared";
import { describe, expect, it } from "vitest";
import { listProfiles, loadAllProfiles, loadProfile, PROFILES_DIR } from "./loadProfile.js";
import { parseProfileYaml, WORDS_PER_TYPE } from "./profileSchema.js";

const HEADER = `id: test-meter
manufacturer: Test
model: T1
datasheet: https://example.com/t1.pdf
maxRegistersPerRequest: 50
maxGap: 4
`;

/** The exact `file: path: message` lines of the profile.invalid error thrown by parsing `yaml`. */
function problemsOf(yaml: string, where = "bad.yaml"): string[] {
  try {
    parseProfileYaml(yaml, where);
  } catch (error) {
    expect(error).toBeInstanceOf(EdgemeterError);
    expect((error as EdgemeterError).code).toBe("profile.invalid");
    expect((error as EdgemeterError).retryable).toBe(false);
    return (error as Error).message.split("\n");
  }
  throw new Error("expected the profile to be rejected");
}

describe("shipped profiles", () => {
  it("lists sdm630 and not the template", () => {
    expect(listProfiles()).toContain("sdm630");
    expect(listProfiles().some((id) => id.startsWith("_"))).toBe(false);
  });

  it("loads every profile in profiles/ with a datasheet link and known measurements", () => {
    const profiles = loadAllProfiles();
    expect(profiles.map((p) => p.id)).toEqual(listProfiles());
    for (const profile of profiles) {
      expect(profile.datasheet).toMatch(/^https?:\/\//);
      expect(profile.registers.length).toBeGreaterThan(0);
      for (const register of profile.registers) expect(isMeasurementName(register.measurement)).toBe(true);
    }
  });

  it("the template is itself a valid profile, so copying it starts from something that loads", () => {
    const file = path.join(PROFILES_DIR, "_template.yaml");
    const template = parseProfileYaml(readFileSync(file, "utf8"), file);
    expect(template.registers.map((r) => r.measurement)).toEqual(["voltageL1V", "importEnergyKwh"]);
    expect(template.registers[0]?.invalid).toEqual(["0xFFFF"]);
  });

  it("sdm630 carries the datasheet addresses, all input float32 big-endian", () => {
    const profile = loadProfile("sdm630");
    const address = Object.fromEntries(profile.registers.map((r) => [r.measurement, r.address]));
    expect(address).toMatchObject({
      voltageL1V: 0x0000,
      voltageL2V: 0x0002,
      voltageL3V: 0x0004,
      currentL1A: 0x0006,
      currentL2A: 0x0008,
      currentL3A: 0x000a,
      activePowerL1W: 0x000c,
      activePowerL2W: 0x000e,
      activePowerL3W: 0x0010,
      powerFactorL1: 0x001e,
      activePowerW: 0x0034,
      apparentPowerVa: 0x0038,
      reactivePowerVar: 0x003c,
      powerFactor: 0x003e,
      frequencyHz: 0x0046,
      importEnergyKwh: 0x0048,
      exportEnergyKwh: 0x004a,
      voltageL1L2V: 0x00c8,
      voltageL2L3V: 0x00ca,
      voltageL3L1V: 0x00cc,
      currentNA: 0x00e0,
    });
    for (const r of profile.registers) {
      expect([r.fn, r.type, r.wordOrder, r.scale]).toEqual(["input", "float32", "big", 1]);
    }
    expect(profile.maxRegistersPerRequest).toBe(80);
  });

  it("loads by explicit path, and refuses an unknown id naming the known ones", () => {
    const byPath = loadProfile(path.join(PROFILES_DIR, "sdm630.yaml"));
    expect(byPath.id).toBe("sdm630");
    expect(() => loadProfile("sdm999")).toThrow(/unknown meter profile "sdm999": known profiles are .*sdm630/);
    expect(() => loadProfile("/nonexistent/meter.yaml")).toThrow(
      expect.objectContaining({ code: "profile.notFound" }) as unknown as Error,
    );
  });
});

describe("profile schema", () => {
  it("converts 1-based register numbers to wire addresses and defaults scale to 1", () => {
    const profile = parseProfileYaml(
      `${HEADER}addressing: 1-based
registers:
  - { measurement: frequencyHz, address: 8, fn: holding, type: uint16, wordOrder: big, scale: 0.01 }
  - { measurement: voltageL1V, address: 1, fn: input, type: uint16, wordOrder: big }
`,
      "one.yaml",
    );
    expect(profile.registers.map((r) => [r.measurement, r.fn, r.address, r.scale])).toEqual([
      ["voltageL1V", "input", 0, 1],
      ["frequencyHz", "holding", 7, 0.01],
    ]);
    expect(profile.source).toBe("one.yaml");
  });

  it("reports every problem of a broken profile as file: path: message", () => {
    const lines = problemsOf(`id: Bad Id
manufacturer: Test
datasheet: not a url
addressing: 0-based
maxRegistersPerRequest: 200
maxGap: -1
registers:
  - { measurement: voltage, address: 0, fn: input, type: float32, wordOrder: big }
  - { measurement: voltageL2V, address: "30001", fn: input, type: float32, wordOrder: big }
  - { measurement: voltageL3V, address: 4, fn: coil, type: float16, wordOrder: middle, scale: 0 }
  - { measurement: currentL1A, address: 6, fn: input, type: int16, wordOrder: big, invalid: ["0xFFFFFFFF", "nope"] }
  - { measurement: currentL2A, address: 8, fn: input, type: int16, wordOrder: big, unit: A }
`);
    expect(lines).toEqual([
      "bad.yaml: id: must be 1-64 characters of a-z 0-9 _ - (it names the file: <id>.yaml)",
      "bad.yaml: model: is required",
      "bad.yaml: datasheet: must be the http(s) URL of the protocol document the addresses come from",
      "bad.yaml: maxRegistersPerRequest: must be at most 125 (the Modbus limit for one read)",
      "bad.yaml: maxGap: must be 0 or more",
      'bad.yaml: registers.0.measurement: unknown measurement "voltage": use a name from @edgemeter/shared MEASUREMENTS (voltageL1V, activePowerW, importEnergyKwh, …)',
      "bad.yaml: registers.1.address: must be an integer register address such as 0x0048 (Modicon 3xxxx/4xxxx register numbers are not accepted: give the register without the 30000/40000 prefix and say whether it counts from 0 or 1)",
      'bad.yaml: registers.2.fn: must be "input" (function 04) or "holding" (function 03)',
      "bad.yaml: registers.2.type: must be one of int16, uint16, int32, uint32, int64, uint64, float32, float64",
      'bad.yaml: registers.2.wordOrder: must be "big" (high word first) or "little" (low word first)',
      "bad.yaml: registers.2.scale: must not be 0",
      'bad.yaml: registers.3.invalid.1: must be "allOnes" or a hex pattern such as "0xFFFFFFFF"',
      'bad.yaml: registers.3.invalid.0: "0xFFFFFFFF" has 8 hex digits but a int16 register has 4',
      'bad.yaml: registers.4: Unrecognized key: "unit"',
    ]);
  });

  it("checks invalid patterns against the register width once the register is otherwise valid", () => {
    expect(
      problemsOf(`${HEADER}addressing: 0-based
registers:
  - { measurement: currentL1A, address: 6, fn: input, type: int16, wordOrder: big, invalid: ["0xFFFFFFFF"] }
`),
    ).toEqual(['bad.yaml: registers.0.invalid.0: "0xFFFFFFFF" has 8 hex digits but a int16 register has 4']);
  });

  it("rejects Modicon numbering, in the addressing field and as 1-based addresses", () => {
    expect(
      problemsOf(`${HEADER}addressing: 30001
registers:
  - { measurement: voltageL1V, address: 0, fn: input, type: uint16, wordOrder: big }
`),
    ).toEqual([
      'bad.yaml: addressing: must be "0-based" (the addresses are wire/PDU addresses) or "1-based" (register numbers counted from 1; 1 is subtracted); Modicon 3xxxx/4xxxx register numbers are not accepted: give the register without the 30000/40000 prefix and say whether it counts from 0 or 1',
    ]);
    expect(
      problemsOf(`${HEADER}addressing: 1-based
registers:
  - { measurement: voltageL1V, address: 30001, fn: input, type: float32, wordOrder: big }
  - { measurement: frequencyHz, address: 40071, fn: holding, type: float32, wordOrder: big }
  - { measurement: voltageL2V, address: 0, fn: input, type: float32, wordOrder: big }
`),
    ).toEqual([
      "bad.yaml: registers.0.address: 30001 looks like a Modicon 3xxxx number: Modicon 3xxxx/4xxxx register numbers are not accepted: give the register without the 30000/40000 prefix and say whether it counts from 0 or 1",
      "bad.yaml: registers.1.address: 40071 looks like a Modicon 4xxxx number: Modicon 3xxxx/4xxxx register numbers are not accepted: give the register without the 30000/40000 prefix and say whether it counts from 0 or 1",
      "bad.yaml: registers.2.address: must be 1 or more in a 1-based profile",
    ]);
  });

  it("rejects a measurement read twice and overlapping registers of one function, not of two", () => {
    expect(
      problemsOf(`${HEADER}addressing: 0-based
registers:
  - { measurement: voltageL1V, address: 0x0000, fn: input, type: float32, wordOrder: big }
  - { measurement: voltageL2V, address: 0x0001, fn: input, type: float32, wordOrder: big }
  - { measurement: voltageL1V, address: 0x0010, fn: input, type: float32, wordOrder: big }
  - { measurement: importEnergyKwh, address: 0x0020, fn: input, type: uint64, wordOrder: big }
  - { measurement: exportEnergyKwh, address: 0x0023, fn: input, type: uint16, wordOrder: big }
  - { measurement: frequencyHz, address: 0x0000, fn: holding, type: float32, wordOrder: big }
  - { measurement: activePowerW, address: 0xFFFF, fn: holding, type: int32, wordOrder: big }
`),
    ).toEqual([
      "bad.yaml: registers.6.address: a int32 at this address runs past 0xFFFF",
      "bad.yaml: registers.2.measurement: voltageL1V is already read by registers.0",
      "bad.yaml: registers.1.address: input registers of voltageL2V overlap those of voltageL1V (registers.0)",
      "bad.yaml: registers.4.address: input registers of exportEnergyKwh overlap those of importEnergyKwh (registers.3)",
    ]);
  });

  it("reports YAML syntax problems with their position", () => {
    expect(problemsOf("id: a\nid: b\n", "dup.yaml")).toEqual(["dup.yaml: line 2, column 1: Map keys must be unique"]);
  });

  it("accepts any id from an explicit file (only shipped profiles are looked up by id)", () => {
    const file = path.join(PROFILES_DIR, "sdm630.yaml");
    const copy = readFileSync(file, "utf8").replace("id: sdm630", "id: sdm631");
    expect(parseProfileYaml(copy, "x.yaml").id).toBe("sdm631");
  });

  it("knows how many words each type takes", () => {
    expect(WORDS_PER_TYPE).toEqual({
      int16: 1,
      uint16: 1,
      int32: 2,
      uint32: 2,
      int64: 4,
      uint64: 4,
      float32: 2,
      float64: 4,
    });
  });
});
