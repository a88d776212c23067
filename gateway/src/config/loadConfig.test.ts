import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadProfile } from "@edgemeter/hardware";
import { EdgemeterError, type InputIssue } from "@edgemeter/shared";
import { tempDir } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "./loadConfig.js";

describe("loadConfig", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });
  function write(files: Record<string, string>): string {
    const { dir, remove } = tempDir("config");
    cleanups.push(remove);
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), content);
    }
    return dir;
  }

  it("fills defaults and resolves relative paths against the config file's folder", () => {
    const dir = write({
      "etc/gateway.yaml": `gatewayId: gw-demo
uplink:
  kind: mqtt
  url: mqtts://broker.example:8883
  caFile: ../pki/ca.pem
  certFile: ../pki/gw.pem
  keyFile: ../pki/gw.key
buses:
  - id: bus1
    transport: tcp
    host: 127.0.0.1
    meters:
      - { id: meter-1, unitId: 1, profile: sdm630 }
      - { id: meter-2, unitId: 2, profile: ../profiles/custom.yaml }
`,
      "pki/ca.pem": "x",
      "pki/gw.pem": "x",
      "pki/gw.key": "x",
      "profiles/custom.yaml": "x",
    });
    const checked: string[] = [];
    const sdm630 = loadProfile("sdm630");
    const config = loadConfig(path.join(dir, "etc/gateway.yaml"), {
      loadProfile: (ref) => {
        checked.push(ref);
        return sdm630;
      },
    });
    // The loaded profiles travel with the configuration, keyed as the meters name them.
    expect(Object.keys(config.profiles).sort()).toEqual([...checked].sort());
    for (const bus of config.buses) for (const meter of bus.meters) expect(config.profiles[meter.profile]).toBe(sdm630);
    expect(config.configFile).toBe(path.join(dir, "etc/gateway.yaml"));
    expect(config.dataDir).toBe(path.join(dir, "etc/.edgemeter/gateway"));
    expect(config.uplink).toEqual({
      kind: "mqtt",
      url: "mqtts://broker.example:8883",
      protocolVersion: 5,
      caFile: path.join(dir, "pki/ca.pem"),
      certFile: path.join(dir, "pki/gw.pem"),
      keyFile: path.join(dir, "pki/gw.key"),
      clientId: "gw-demo",
      keepaliveS: 30,
      reconnectPeriodMs: 2_000,
      reconnectCapMs: 60_000,
      stablePeriodMs: 60_000,
    });
    expect(config.forwarder).toEqual({
      maxBatchReadings: 500,
      maxBatchBytes: 120_000,
      idleFlushMs: 1_000,
      ackTimeoutMs: 30_000,
      windowBatches: 4,
      ackFlushMs: 1_000,
    });
    // Durability defaults (issue 4).
    expect(config.outbox).toEqual({ capMb: 1_024, appendFlushMs: 200 });
    expect(config.faults).toEqual({ preset: "en50160-230v-50hz", thresholds: {}, meters: {} });
    expect(config.clock).toEqual({ syncedFile: "auto", syncCheckMs: 5_000, holdUnsyncedMaxMs: 3_600_000 });
    expect(config.log.level).toBe("info");
    expect(config.buses[0]).toMatchObject({ transport: "tcp", port: 502, timeoutMs: 1_000, interFrameGapMs: 0 });
    expect(config.buses[0]?.meters.map((m) => [m.profile, m.pollIntervalMs])).toEqual([
      ["sdm630", 1_000],
      [path.join(dir, "profiles/custom.yaml"), 1_000],
    ]);
    expect(checked).toEqual(["sdm630", path.join(dir, "profiles/custom.yaml")]);
  });

  it("checks profiles with @edgemeter/hardware by default and lists every issue as data", () => {
    const dir = write({
      "gateway.yaml": `gatewayId: gw-demo
uplink: { kind: mqtt, url: "mqtt://127.0.0.1:1883", protocolVersion: 4 }
buses:
  - { id: bus1, transport: tcp, host: h, meters: [ { id: m1, unitId: 1, profile: sdm630 } ] }
  - { id: bus1, transport: tcp, host: h, meters: [ { id: m2, unitId: 1, profile: nope } ] }
`,
    });
    const file = path.join(dir, "gateway.yaml");
    let caught: unknown;
    try {
      loadConfig(file);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(EdgemeterError);
    const error = caught as EdgemeterError;
    expect(error.code).toBe("config.invalid");
    const issues = error.context.issues as InputIssue[];
    expect(issues.map((i) => [i.where, i.path])).toEqual([
      [file, "buses.1.id"],
      [file, "buses.1.meters.0.profile"],
    ]);
    expect(error.message.split("\n")).toHaveLength(2);
  });
});
