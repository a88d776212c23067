/**
 * The whole data path, end to end, with real parts at every step: a simulated SDM630 serves
 * real Modbus TCP frames; the gateway process polls it, stores each reading in its SQLite
 * outbox and publishes over MQTT with mutual TLS; the cloud process lands the readings in
 * its database; the REST API returns them. Run twice: through the embedded Aedes broker
 * (`npm start`'s wiring, MQTT 3.1.1) and through a real Mosquitto 2 (MQTT 5) that requires
 * client certificates and maps their CN to the username.
 */
import { startSimulator } from "@edgemeter/hardware";
import { requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mosquittoAvailable } from "../support/mosquitto.js";
import { makeTestPki, type TestPki } from "../support/pki.js";
import { stopAllProcesses } from "../support/processes.js";
import {
  type ApiReading,
  type BrokerKind,
  startCloudStack,
  startGateway,
  writeGatewayConfig,
} from "../support/stack.js";

const hasMosquitto = requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto");

type Simulator = Awaited<ReturnType<typeof startSimulator>>;

const METERS = [
  { id: "meter-a", unitId: 1 },
  { id: "meter-b", unitId: 2 },
  { id: "meter-c", unitId: 7 },
];

/** float32 keeps ~7 significant digits; the wire carries the decoded double exactly. */
function closeTo(actual: number, expected: number): boolean {
  return Math.abs(actual - expected) <= Math.max(Math.abs(expected) * 1e-6, 1e-6);
}

/**
 * A reading was taken at `ts`, the start of its poll; the poll's requests (five for the
 * SDM630) follow one another, and the simulator changes its state on ticks, so a tick may
 * fall between two requests of one poll, and under load a poll may take a few ticks. Each
 * value must therefore equal what the simulator served for that measurement in a snapshot in
 * force at some moment of [ts, ts + POLL_WINDOW_MS]. With noisy voltages and rising energy,
 * a value that was never served cannot match by chance.
 */
const POLL_WINDOW_MS = 3_000;

function servedValuesMatch(sim: Simulator, unitId: number, reading: ApiReading): string[] {
  const history = sim.history(unitId);
  const tsMs = Date.parse(reading.ts);
  const first = Math.max(
    0,
    history.findLastIndex((s) => s.fromMs <= tsMs),
  );
  const candidates = history.slice(first).filter((s) => s.fromMs <= tsMs + POLL_WINDOW_MS);
  return Object.entries(reading.values)
    .filter(([name, value]) => !candidates.some((s) => closeTo(value, s.values[name as keyof typeof s.values])))
    .map(([name, value]) => `${name}=${value} was not served in [${reading.ts}, +${POLL_WINDOW_MS} ms]`);
}

async function runDataPath(options: {
  dir: string;
  pki: TestPki;
  sim: Simulator;
  gatewayId: string;
  broker: BrokerKind;
}) {
  const stack = await startCloudStack(options);
  const gatewayConfig = writeGatewayConfig({
    dir: options.dir,
    gatewayId: options.gatewayId,
    uplink: { url: stack.brokerUrl, protocolVersion: stack.protocolVersion, ...options.pki.gateway(options.gatewayId) },
    modbusPort: options.sim.port,
    meters: METERS,
  });
  const startedMs = Date.now();
  await startGateway(gatewayConfig);
  return { api: stack.api, startedMs };
}

describe("data path: simulator → gateway → MQTT (mTLS) → cloud → API", () => {
  let pkiDir: ReturnType<typeof tempDir>;
  let pki: TestPki;
  let sim: Simulator;

  beforeAll(async () => {
    pkiDir = tempDir("e2e-pki");
    pki = await makeTestPki(pkiDir.dir, {
      gateways: ["gw-embedded", "gw-mosquitto"],
      servers: ["localhost"],
      clients: ["cloud-ingest"],
    });
    sim = await startSimulator({
      port: 0,
      host: "127.0.0.1",
      tickMs: 250,
      meters: METERS.map((m, i) => ({ unitId: m.unitId, profile: "sdm630", seed: 100 + i })),
    });
  });

  afterAll(async () => {
    await stopAllProcesses();
    await sim?.close();
    pkiDir?.remove();
  });

  for (const broker of ["embedded", "mosquitto"] as const) {
    it.skipIf(broker === "mosquitto" && !hasMosquitto)(
      `readings arrive in the API equal to what the simulator served (${broker} broker)`,
      async () => {
        const dir = tempDir(`e2e-${broker}`);
        afterAll(() => dir.remove());
        const gatewayId = `gw-${broker}`;
        const { api, startedMs } = await runDataPath({ dir: dir.dir, pki, sim, gatewayId, broker });

        const perMeter = await waitFor(
          async () => {
            const result: Record<string, ApiReading[]> = {};
            for (const meter of METERS) {
              const from = new Date(startedMs - 60_000).toISOString();
              const { status, body } = await api.get<{ items: ApiReading[] }>(
                `/v1/meters/${meter.id}/readings?from=${from}`,
              );
              if (status !== 200 || body.items.length < 5) return undefined;
              result[meter.id] = body.items;
            }
            return result;
          },
          "five readings per meter in the API",
          45_000,
          250,
        );

        const meters = await api.get<{ items: { meterId: string; gatewayId: string }[] }>("/v1/meters");
        expect(meters.status).toBe(200);
        for (const meter of METERS) {
          expect(meters.body.items).toContainEqual(expect.objectContaining({ meterId: meter.id, gatewayId }));
          const readings = perMeter[meter.id] ?? [];
          for (const reading of readings) {
            expect(reading.gatewayId).toBe(gatewayId);
            expect(reading.meterId).toBe(meter.id);
            expect(reading.clock).toBe("synced");
            // Taken after the gateway started and not in the future.
            expect(Date.parse(reading.ts)).toBeGreaterThanOrEqual(startedMs - 1_000);
            expect(Date.parse(reading.ts)).toBeLessThanOrEqual(Date.now());
            // The SDM630 profile's measurements made it across.
            for (const name of [
              "voltageL1V",
              "voltageL2V",
              "voltageL3V",
              "frequencyHz",
              "activePowerW",
              "importEnergyKwh",
            ]) {
              expect(reading.values, `${meter.id} ${reading.ts} ${name}`).toHaveProperty(name);
            }
            expect(servedValuesMatch(sim, meter.unitId, reading), `${meter.id} at ${reading.ts}`).toEqual([]);
          }
          // seq rises with time per gateway; the energy register never goes backwards.
          const ordered = [...readings].sort((a, b) => a.ts.localeCompare(b.ts));
          for (let i = 1; i < ordered.length; i++) {
            const previous = ordered[i - 1] as ApiReading;
            const current = ordered[i] as ApiReading;
            expect(current.seq).toBeGreaterThan(previous.seq);
            expect(current.values.importEnergyKwh).toBeGreaterThanOrEqual(previous.values.importEnergyKwh as number);
          }
        }
      },
      120_000,
    );
  }
});
