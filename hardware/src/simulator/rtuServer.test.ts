import { SerialPort } from "serialport";
import { afterEach, describe, expect, it } from "vitest";
import { socatBinary, startPtyPair } from "../testing/ptyPair.js";
import { withCrc } from "./lineTiming.js";
import { startSimulator } from "./simulator.js";

const HAVE_SOCAT = socatBinary() !== null;

describe.runIf(HAVE_SOCAT)("simulator RTU slave on a pty (raw frames)", () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup() {
    const pty = await startPtyPair();
    cleanups.push(() => pty.close());
    const sim = await startSimulator({
      tickMs: 0,
      meters: [{ unitId: 5, profile: "sdm630" }],
      rtu: { path: pty.slavePath, emulateLineTiming: false },
    });
    cleanups.push(() => sim.close());
    const master = new SerialPort({ path: pty.masterPath, baudRate: 9_600 });
    await new Promise<void>((resolve, reject) => master.on("open", resolve).on("error", reject));
    cleanups.push(() => new Promise((resolve) => master.close(resolve)));
    let received = Buffer.alloc(0);
    master.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
    });
    const exchange = async (bytes: Buffer, expectedBytes: number) => {
      received = Buffer.alloc(0);
      master.write(bytes);
      for (let i = 0; i < 100 && received.length < expectedBytes; i++) await new Promise((r) => setTimeout(r, 10));
      return received;
    };
    return { sim, exchange };
  }

  it("ignores a frame with a bad CRC and resynchronises on the next good one behind garbage", async () => {
    const { sim, exchange } = await setup();
    const request = withCrc([5, 4, 0x00, 0x48, 0x00, 0x02]);
    const corrupted = Buffer.from(request);
    corrupted[7] = (corrupted[7] ?? 0) ^ 0xff;
    expect((await exchange(corrupted, 1)).length).toBe(0);
    const answer = await exchange(Buffer.concat([Buffer.from([0x13, 0x37, 0x00]), request]), 9);
    expect(answer.subarray(0, 3).toString("hex")).toBe("050404");
    expect(answer.subarray(0, 7).equals(withCrc([...answer.subarray(0, 7)]).subarray(0, 7))).toBe(true);
    expect(answer.subarray(7).equals(withCrc([...answer.subarray(0, 7)]).subarray(7))).toBe(true);
    expect(answer.readFloatBE(3)).toBeCloseTo(sim.snapshot(5).values.importEnergyKwh, 1);
    expect(sim.rtuStats().badRequests).toBeGreaterThan(0);
  });

  it("answers exception 2 for an address outside the profile, and nothing to unknown units or broadcast", async () => {
    const { exchange } = await setup();
    expect((await exchange(withCrc([5, 4, 0x10, 0x00, 0x00, 0x02]), 5)).toString("hex")).toBe(
      withCrc([5, 0x84, 2]).toString("hex"),
    );
    expect((await exchange(withCrc([6, 4, 0x00, 0x00, 0x00, 0x02]), 1)).length).toBe(0);
    expect((await exchange(withCrc([0, 4, 0x00, 0x00, 0x00, 0x02]), 1)).length).toBe(0);
  });
});
