import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GATEWAY_MALLOC_ENV, GATEWAY_NODE_OPTIONS } from "./nodeOptions.js";

const UNIT = fileURLToPath(new URL("../../../hardware/systemd/edgemeter-gateway.service", import.meta.url));

describe("the gateway's Node.js options", () => {
  it("are the ones the systemd unit runs with (the footprint benchmark measures those)", () => {
    const lines = readFileSync(UNIT, "utf8").split("\n");
    // systemd.exec(5): a value with spaces must be quoted whole, or it splits into several variables.
    const nodeOptions = lines
      .map((line) => /^Environment=(.*NODE_OPTIONS=.*)$/.exec(line.trim())?.[1])
      .filter((value) => value !== undefined);
    const assignments = [
      `NODE_OPTIONS=${GATEWAY_NODE_OPTIONS}`,
      ...Object.entries(GATEWAY_MALLOC_ENV).map(([k, v]) => `${k}=${v}`),
    ];
    expect(nodeOptions).toEqual([assignments.map((a) => `"${a}"`).join(" ")]);
  });

  it("are the malloc settings the systemd unit runs with, and nothing else sets malloc there", () => {
    const unit = readFileSync(UNIT, "utf8");
    const malloc = [...unit.matchAll(/"?(MALLOC_[A-Z_]+=[^"\s]*)"?/g)].map((m) => m[1]);
    expect(malloc).toEqual(Object.entries(GATEWAY_MALLOC_ENV).map(([k, v]) => `${k}=${v}`));
  });

  it("are accepted by this Node.js in NODE_OPTIONS", async () => {
    const { spawnSync } = await import("node:child_process");
    const result = spawnSync(process.execPath, ["-e", "process.stdout.write('ok')"], {
      env: { ...process.env, NODE_OPTIONS: GATEWAY_NODE_OPTIONS },
      encoding: "utf8",
    });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("ok");
  });
});
