import { writeFileSync } from "node:fs";
import path from "node:path";
import { loadProfile } from "@edgemeter/hardware";
import { tempDir } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "./loadConfig.js";

const SDM630 = loadProfile("sdm630");

describe("loadConfig: RS-485 (rtu) and RTU-over-TCP buses (field layer)", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });
  function load(buses: string) {
    const { dir, remove } = tempDir("rtu-config");
    cleanups.push(remove);
    const file = path.join(dir, "gateway.yaml");
    writeFileSync(
      file,
      `gatewayId: gw-field
uplink: { kind: mqtt, url: "mqtt://127.0.0.1:1883" }
buses:
${buses}`,
    );
    return loadConfig(file, { loadProfile: () => SDM630 });
  }

  it("accepts an rtu bus with line settings and fills the scheduler defaults", () => {
    const config = load(`  - id: rs485
    transport: rtu
    path: /dev/serial/by-id/usb-FTDI_FT232R-if00-port0
    baudRate: 9600
    parity: even
    timeoutMs: 300
    meters:
      - { id: m1, unitId: 1, profile: sdm630 }
  - id: converter
    transport: tcp
    framing: rtu
    host: 192.168.1.50
    port: 4001
    meters:
      - { id: m2, unitId: 1, profile: abb-b23 }
`);
    expect(config.buses[0]).toMatchObject({
      transport: "rtu",
      path: "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0",
      baudRate: 9_600,
      parity: "even",
      dataBits: 8,
      stopBits: 1,
      timeoutMs: 300,
      interFrameGapMs: 0,
      retries: 1,
      offlineAfterPolls: 3,
      maxReprobeIntervalMs: 300_000,
    });
    expect(config.buses[1]).toMatchObject({ transport: "tcp", framing: "rtu", port: 4001 });
  });

  it("names a bad line setting with its path", () => {
    expect(() =>
      load(`  - id: rs485
    transport: rtu
    path: /dev/ttyUSB0
    parity: mark
    stopBits: 3
    meters:
      - { id: m1, unitId: 1, profile: sdm630 }
`),
    ).toThrow(/buses\.0\.parity[\s\S]*buses\.0\.stopBits|buses\.0\.stopBits[\s\S]*buses\.0\.parity/);
  });
});
