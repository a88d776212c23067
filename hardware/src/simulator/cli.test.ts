import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import modbusSerial from "modbus-serial";
import { describe, expect, it } from "vitest";
import { decodeResponse, planReads } from "../decoding/readPlan.js";
import { loadProfile } from "../profiles/loadProfile.js";
import { socatBinary, startPtyPair } from "../testing/ptyPair.js";

// modbus-serial is CommonJS: `.default` is the client class for TypeScript and at run time alike.
const ModbusRTU = modbusSerial.default;

// The bin as installed: the tsc output (npm test builds it first).
const CLI = fileURLToPath(new URL("../../dist/simulator/cli.js", import.meta.url));

function run(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

describe.runIf(existsSync(CLI))("edgemeter-simulator CLI", () => {
  it("announces its address, serves the meters, and exits 0 on SIGTERM", async () => {
    const sim = run(["--port", "0", "--meters", "2", "--first-unit", "5", "--profile", "sdm630"]);
    const line = await new Promise<string>((resolve, reject) => {
      sim.child.stdout.on("data", () => {
        const found = /simulator: modbus-tcp:\/\/127\.0\.0\.1:(\d+) units 5-6\n/.exec(sim.output().stdout);
        if (found) resolve(found[0]);
      });
      sim.child.once("exit", () => reject(new Error(`exited early: ${sim.output().stderr}`)));
    });
    const port = Number(/:(\d+) /.exec(line)?.[1]);
    const client = new ModbusRTU();
    await client.connectTCP("127.0.0.1", { port });
    client.setTimeout(2_000);
    const profile = loadProfile("sdm630");
    const request = planReads(profile)[0];
    if (!request) throw new Error("sdm630 has a first request");
    for (const unitId of [5, 6]) {
      client.setID(unitId);
      const answer = await client.readInputRegisters(request.address, request.count);
      const decoded = decodeResponse(request, answer.data);
      expect(decoded.errors).toEqual([]);
      expect(decoded.values.voltageL1V).toBeGreaterThan(220);
    }
    await new Promise<void>((resolve) => client.close(() => resolve()));
    sim.child.kill("SIGTERM");
    expect(await sim.exited).toBe(0);
  });

  it.runIf(socatBinary() !== null)(
    "--rtu serves the meters on a serial line (socat pty) at the given settings",
    async () => {
      const pty = await startPtyPair();
      const sim = run([
        "--rtu",
        pty.slavePath,
        "--baud",
        "19200",
        "--parity",
        "even",
        "--meters",
        "2",
        "--profile",
        "dtsu666",
      ]);
      try {
        await new Promise<void>((resolve, reject) => {
          sim.child.stdout.on("data", () => {
            if (sim.output().stdout.includes(`simulator: modbus-rtu://${pty.slavePath} 19200 baud units 1-2\n`))
              resolve();
          });
          sim.child.once("exit", () => reject(new Error(`exited early: ${sim.output().stderr}`)));
        });
        const client = new ModbusRTU();
        await client.connectRTUBuffered(pty.masterPath, { baudRate: 19_200, parity: "even" });
        client.setTimeout(2_000);
        const request = planReads(loadProfile("dtsu666")).find((r) =>
          r.registers.some((g) => g.measurement === "voltageL1V"),
        );
        if (!request) throw new Error("dtsu666 reads voltageL1V");
        client.setID(2);
        const decoded = decodeResponse(
          request,
          (await client.readHoldingRegisters(request.address, request.count)).data,
        );
        expect(decoded.errors).toEqual([]);
        expect(decoded.values.voltageL1V).toBeGreaterThan(220);
        await new Promise<void>((resolve) => client.close(() => resolve()));
        sim.child.kill("SIGTERM");
        expect(await sim.exited).toBe(0);
      } finally {
        sim.child.kill("SIGTERM");
        await pty.close();
      }
    },
  );

  it("rejects bad arguments with exit code 2 and a message naming the option", async () => {
    const sim = run(["--meters", "many"]);
    expect(await sim.exited).toBe(2);
    expect(sim.output().stderr).toContain('--meters: must be an integer 1-247, got "many"');
    const unknown = run(["--profile", "sdm999", "--port", "0"]);
    expect(await unknown.exited).toBe(2);
    expect(unknown.output().stderr).toContain('unknown meter profile "sdm999"');
  });
});
