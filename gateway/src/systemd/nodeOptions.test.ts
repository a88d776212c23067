import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GATEWAY_NODE_OPTIONS } from "./nodeOptions.js";

const UNIT = fileURLToPath(new URL("../../../hardware/systemd/edgemeter-gateway.service", import.meta.url));

describe("the gateway's Node.js options", () => {
  it("are the ones the systemd unit runs with (the footprint benchmark measures those)", () => {
    const lines = readFileSync(UNIT, "utf8").split("\n");
    // systemd.exec(5): a value with spaces must be quoted whole, or it splits into several variables.
    const nodeOptions = lines
      .map((line) => /^Environment=(.*NODE_OPTIONS=.*)$/.exec(line.trim())?.[1])
      .filter((value) => value !== undefined);
    expect(nodeOptions).toEqual([`"NODE_OPTIONS=${GATEWAY_NODE_OPTIONS}"`]);
  });

  it("come with no malloc settings in the unit, which the benchmark would not measure (nodeOptions.ts says why)", () => {
    const unit = readFileSync(UNIT, "utf8");
    expect([...unit.matchAll(/MALLOC_[A-Z_]+=/g)].map((m) => m[0])).toEqual([]);
  });

  it("are accepted by this Node.js in NODE_OPTIONS, and expose gc() (periodicGc.ts calls it every 10 s)", () => {
    const result = spawnSync(process.execPath, ["-e", "process.stdout.write(typeof gc)"], {
      env: { ...process.env, NODE_OPTIONS: GATEWAY_NODE_OPTIONS },
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("function");
  });
});
