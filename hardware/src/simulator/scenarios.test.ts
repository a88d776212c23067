import { describe, expect, it } from "vitest";
import { startSimulator } from "./simulator.js";

describe("scripted power-quality scenarios", () => {
  it("sag, swell, interruption and frequency drift show in what the simulator serves, and end on time", async () => {
    let nowMs = Date.UTC(2026, 0, 5, 12);
    const t0 = nowMs;
    const sim = await startSimulator({
      port: 0,
      tickMs: 0,
      clock: () => nowMs,
      meters: [{ unitId: 1, profile: "sdm630" }],
    });
    try {
      const at = (offsetMs: number) => {
        nowMs = t0 + offsetMs;
        sim.tick();
        return sim.snapshot(1).values;
      };
      const normal = at(1_000);
      sim.setScenarios(1, [
        { kind: "sag", startMs: t0 + 10_000, durationMs: 2_000, residualPct: 70, phases: ["L2"] },
        { kind: "swell", startMs: t0 + 20_000, durationMs: 2_000, levelPct: 115 },
        { kind: "interruption", startMs: t0 + 30_000, durationMs: 5_000 },
        { kind: "frequencyDrift", startMs: t0 + 40_000, durationMs: 60_000, driftHzPerMin: -0.6 },
      ]);
      const sag = at(11_000);
      expect(sag.voltageL2V / normal.voltageL2V).toBeGreaterThan(0.65);
      expect(sag.voltageL2V).toBeLessThan(0.9 * 230);
      expect(sag.voltageL1V).toBeGreaterThan(0.9 * 230);
      expect(at(12_500).voltageL2V).toBeGreaterThan(0.9 * 230);
      const swell = at(21_000);
      for (const v of [swell.voltageL1V, swell.voltageL2V, swell.voltageL3V]) expect(v).toBeGreaterThan(1.1 * 230);
      const outage = at(31_000);
      expect([outage.voltageL1V, outage.currentL1A, outage.activePowerW]).toEqual([0, 0, 0]);
      // No power, no energy: the register stands still through the interruption.
      expect(at(34_000).importEnergyKwh).toBe(outage.importEnergyKwh);
      expect(at(36_000).voltageL1V).toBeGreaterThan(200);
      const drifted = at(70_000);
      // 30 s at -0.6 Hz/min: about 0.3 Hz below 50 Hz (the model's own wander is far smaller).
      expect(drifted.frequencyHz).toBeLessThan(49.8);
      expect(drifted.frequencyHz).toBeGreaterThan(49.6);
    } finally {
      await sim.close();
    }
  });
});
