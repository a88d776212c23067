import { writeFileSync } from "node:fs";
import path from "node:path";
import { startSimulator } from "@edgemeter/hardware";
import { socatBinary, startPtyPair } from "@edgemeter/hardware/testing";
import { TelemetryPayload, topicFor } from "@edgemeter/shared";
import { probeTcp, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import { connectAsync } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../config/loadConfig.js";
import { createLogger } from "../logging/logger.js";
import { createGateway } from "../main.js";

const HAVE_SOCAT = requireService("socat", socatBinary() !== null, "apt-get install socat");
const HAVE_BROKER = requireService(
  "Mosquitto at 127.0.0.1:1883",
  await probeTcp("127.0.0.1", 1883),
  "apt install mosquitto",
);

describe.runIf(HAVE_SOCAT && HAVE_BROKER)("the gateway daemon with an rtu bus from gateway.yaml", () => {
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("polls meters on RS-485 (socat pty, 8E1, line timing) and publishes their readings", async () => {
    const pty = await startPtyPair();
    cleanups.push(() => pty.close());
    const sim = await startSimulator({
      tickMs: 0,
      meters: [
        { unitId: 1, profile: "sdm120" },
        { unitId: 2, profile: "abb-b23" },
      ],
      rtu: { path: pty.slavePath, baudRate: 19_200, parity: "even", turnaroundMs: 5 },
    });
    cleanups.push(() => sim.close());
    const gatewayId = `gw-rtu-${process.pid}`;
    const temp = tempDir("rtu-gateway");
    cleanups.push(temp.remove);
    const configFile = path.join(temp.dir, "gateway.yaml");
    writeFileSync(
      configFile,
      `gatewayId: ${gatewayId}
uplink: { kind: mqtt, url: "mqtt://127.0.0.1:1883" }
forwarder: { idleFlushMs: 50 }
buses:
  - id: rs485
    transport: rtu
    path: ${pty.masterPath}
    baudRate: 19200
    parity: even
    timeoutMs: 500
    meters:
      - { id: flat-1, unitId: 1, profile: sdm120, pollIntervalMs: 200 }
      - { id: flat-2, unitId: 2, profile: abb-b23, pollIntervalMs: 200 }
log: { level: warn }
`,
    );
    const subscriber = await connectAsync("mqtt://127.0.0.1:1883", { protocolVersion: 5 });
    cleanups.push(() => subscriber.endAsync());
    const seen = new Map<string, Record<string, number>>();
    subscriber.on("message", (_topic, payload) => {
      const telemetry = TelemetryPayload.parse(JSON.parse(payload.toString()));
      for (const reading of telemetry.readings) seen.set(reading.meterId, reading.values);
    });
    await subscriber.subscribeAsync(topicFor("telemetry", gatewayId), { qos: 1 });

    const gateway = createGateway(loadConfig(configFile), { logger: createLogger("warn") });
    cleanups.push(() => gateway.stop());
    await gateway.start();
    await waitFor(() => (seen.has("flat-1") && seen.has("flat-2") ? true : undefined), "readings of both meters");
    expect(seen.get("flat-1")?.importEnergyKwh).toBeCloseTo(sim.snapshot(1).values.importEnergyKwh, 2);
    // ABB: uint64 in 0.01 kWh, decoded exactly.
    expect(seen.get("flat-2")?.importEnergyKwh).toBe(sim.snapshot(2).values.importEnergyKwh);
    expect(seen.get("flat-2")?.voltageL1V).toBe(sim.snapshot(2).values.voltageL1V);
  }, 60_000);
});
