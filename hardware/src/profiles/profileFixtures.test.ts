import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { decodeResponse, planReads } from "../decoding/readPlan.js";
import { listProfiles, loadProfile, PROFILES_DIR } from "./loadProfile.js";
import { type MeterProfile, WORDS_PER_TYPE } from "./profileSchema.js";

/**
 * Every shipped profile decodes its datasheet-derived fixture (profiles/fixtures/<id>.yaml:
 * the words on the wire, written independently of our encoder) to the expected values,
 * through the same read plan the gateway uses.
 */

interface FixtureRegister {
  measurement: string;
  words: string;
  value: number;
}

function fixtureOf(id: string): FixtureRegister[] {
  const text = readFileSync(path.join(PROFILES_DIR, "fixtures", `${id}.yaml`), "utf8");
  return (parse(text) as { registers: FixtureRegister[] }).registers;
}

/** The register image a meter would hold: fixture words at the profile's addresses, all-ones elsewhere. */
function registerImage(profile: MeterProfile, fixture: FixtureRegister[]): Map<string, number> {
  const image = new Map<string, number>();
  for (const entry of fixture) {
    const register = profile.registers.find((r) => r.measurement === entry.measurement);
    if (register === undefined)
      throw new Error(`${profile.id}: fixture names ${entry.measurement}, not in the profile`);
    const words = entry.words.split(" ").map((w) => Number.parseInt(w, 16));
    expect(words, `${profile.id} ${entry.measurement}`).toHaveLength(WORDS_PER_TYPE[register.type]);
    words.forEach((word, i) => {
      image.set(`${register.fn}:${register.address + i}`, word);
    });
  }
  return image;
}

function decodeAll(profile: MeterProfile, image: Map<string, number>) {
  const values: Record<string, number> = {};
  const errors: { code: string; message: string }[] = [];
  for (const request of planReads(profile)) {
    expect(request.count).toBeLessThanOrEqual(profile.maxRegistersPerRequest);
    const words = Array.from(
      { length: request.count },
      (_, i) => image.get(`${request.fn}:${request.address + i}`) ?? 0,
    );
    const decoded = decodeResponse(request, words);
    Object.assign(values, decoded.values);
    errors.push(...decoded.errors);
  }
  return { values, errors };
}

describe("shipped profiles", () => {
  it("ship the models the field layer promises, each with a fixture", () => {
    const ids = listProfiles();
    for (const id of [
      "sdm120",
      "sdm230",
      "sdm630",
      "sdm72d",
      "abb-b23",
      "abb-b24",
      "em24",
      "iem3x55",
      "janitza-b23",
      "dtsu666",
    ]) {
      expect(ids).toContain(id);
    }
  });

  for (const id of listProfiles()) {
    it(`${id}: decodes its datasheet-derived fixture to the expected values`, () => {
      const profile = loadProfile(id);
      expect(profile.datasheet).toMatch(/^https:\/\//);
      const fixture = fixtureOf(id);
      // Every register of the profile has a fixture entry, and nothing else does.
      expect(fixture.map((f) => f.measurement).sort()).toEqual(profile.registers.map((r) => r.measurement).sort());
      const { values, errors } = decodeAll(profile, registerImage(profile, fixture));
      expect(errors).toEqual([]);
      for (const entry of fixture) {
        const got = values[entry.measurement];
        expect(got, `${id} ${entry.measurement}`).toBeDefined();
        // float32 carries ~7 significant digits; integers with a scale decode exactly.
        expect(Math.abs((got ?? Number.NaN) - entry.value), `${id} ${entry.measurement}: ${got}`).toBeLessThanOrEqual(
          Math.abs(entry.value) * 1e-6,
        );
      }
    });
  }
});

describe("vendor 'not available' markers decode to a missing value", () => {
  it("ABB B23: all-ones (unsigned) and 0x7FFF… (signed) are missing, never a number", () => {
    const profile = loadProfile("abb-b23");
    const image = registerImage(profile, fixtureOf("abb-b23"));
    const voltage = profile.registers.find((r) => r.measurement === "voltageL2V");
    const power = profile.registers.find((r) => r.measurement === "activePowerL3W");
    const energy = profile.registers.find((r) => r.measurement === "exportEnergyKwh");
    if (voltage === undefined || power === undefined || energy === undefined) throw new Error("profile changed");
    for (let i = 0; i < 2; i++) image.set(`holding:${voltage.address + i}`, 0xffff);
    image.set(`holding:${power.address}`, 0x7fff);
    image.set(`holding:${power.address + 1}`, 0xffff);
    for (let i = 0; i < 4; i++) image.set(`holding:${energy.address + i}`, 0xffff);
    const { values, errors } = decodeAll(profile, image);
    expect(values.voltageL2V).toBeUndefined();
    expect(values.activePowerL3W).toBeUndefined();
    expect(values.exportEnergyKwh).toBeUndefined();
    expect(values.voltageL1V).toBeCloseTo(230.1, 6);
    expect(errors.map((e) => e.code)).toEqual(["decode.notAvailable", "decode.notAvailable", "decode.notAvailable"]);
  });

  it("Schneider iEM3x55: 0x8000000000000000 energy and 0xFFC00000 float are missing", () => {
    const profile = loadProfile("iem3x55");
    const image = registerImage(profile, fixtureOf("iem3x55"));
    const energy = profile.registers.find((r) => r.measurement === "importEnergyKwh");
    const frequency = profile.registers.find((r) => r.measurement === "frequencyHz");
    if (energy === undefined || frequency === undefined) throw new Error("profile changed");
    // 1-based register 3204 is wire address 3203.
    expect(energy.address).toBe(3203);
    [0x8000, 0, 0, 0].forEach((w, i) => {
      image.set(`holding:${energy.address + i}`, w);
    });
    image.set(`holding:${frequency.address}`, 0xffc0);
    image.set(`holding:${frequency.address + 1}`, 0x0000);
    const { values, errors } = decodeAll(profile, image);
    expect(values.importEnergyKwh).toBeUndefined();
    expect(values.frequencyHz).toBeUndefined();
    expect(errors).toHaveLength(2);
    expect(values.exportEnergyKwh).toBeCloseTo(89.12, 6);
  });
});
