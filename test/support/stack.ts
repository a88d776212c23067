/**
 * Builds the configuration files of a cloud and a gateway for end-to-end tests and talks to
 * the cloud's REST API, so each test states only what differs (broker, ports, meters).
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { freePort } from "@edgemeter/shared/testing";
import { startMosquitto } from "./mosquitto.js";
import type { TestPki } from "./pki.js";
import { BIN, type RunningProcess, runNode, startNode, stopWithAllProcesses } from "./processes.js";

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface CloudOptions {
  dir: string;
  apiPort: number;
  mqtt: TlsFiles & { url: string; protocolVersion: 4 | 5; clientId: string };
  broker?: TlsFiles & { port: number };
  databaseUrl?: string;
}

export function writeCloudConfig(options: CloudOptions): string {
  const file = path.join(options.dir, "cloud.yaml");
  const config: Record<string, unknown> = {
    dataDir: path.join(options.dir, "cloud-data"),
    mqtt: options.mqtt,
    api: { host: "127.0.0.1", port: options.apiPort },
    log: { level: "info" },
  };
  if (options.broker !== undefined) config.broker = { host: "127.0.0.1", ...options.broker };
  if (options.databaseUrl !== undefined) config.databaseUrl = options.databaseUrl;
  // JSON is YAML: the config loader reads both.
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export interface GatewayOptions {
  dir: string;
  gatewayId: string;
  uplink: TlsFiles & { url: string; protocolVersion: 4 | 5 };
  modbusPort: number;
  meters: { id: string; unitId: number; pollIntervalMs?: number }[];
}

export function writeGatewayConfig(options: GatewayOptions): string {
  const file = path.join(options.dir, `${options.gatewayId}.yaml`);
  const config = {
    gatewayId: options.gatewayId,
    dataDir: path.join(options.dir, `${options.gatewayId}-data`),
    uplink: { kind: "mqtt", ...options.uplink },
    buses: [
      {
        id: "bus1",
        transport: "tcp",
        host: "127.0.0.1",
        port: options.modbusPort,
        timeoutMs: 1000,
        meters: options.meters.map((m) => ({
          id: m.id,
          unitId: m.unitId,
          profile: "sdm630",
          pollIntervalMs: m.pollIntervalMs ?? 500,
        })),
      },
    ],
    log: { level: "info" },
  };
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** Creates an admin API key with the CLI (before `serve`: PGlite allows one process at a time). */
export function createApiKey(cloudConfig: string): string {
  const result = runNode(BIN.cloud, ["apikey", "create", "--name", "e2e", "--scope", "admin", "--config", cloudConfig]);
  const key = /em_[A-Za-z0-9_-]+/.exec(result.stdout)?.[0];
  if (result.code !== 0 || key === undefined) {
    throw new Error(`apikey create failed (${result.code}):\n${result.stdout}${result.stderr}`);
  }
  return key;
}

export async function startCloud(config: string): Promise<{ process: RunningProcess; apiUrl: string }> {
  const cloud = startNode("cloud", BIN.cloud, ["serve", "--config", config]);
  const [, apiUrl] = await cloud.waitForLine(/^api: (\S+)/, 60_000);
  return { process: cloud, apiUrl: apiUrl as string };
}

export async function startGateway(config: string): Promise<RunningProcess> {
  const gateway = startNode("gateway", BIN.gateway, ["run", "--config", config]);
  await gateway.waitForLine(/^gateway: /, 30_000);
  return gateway;
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly apiKey: string,
  ) {}

  async get<T = unknown>(route: string): Promise<{ status: number; body: T }> {
    const response = await fetch(`${this.baseUrl}${route}`, { headers: { "x-api-key": this.apiKey } });
    return { status: response.status, body: (await response.json()) as T };
  }
}

export interface ApiReading {
  meterId: string;
  gatewayId: string;
  seq: number;
  ts: string;
  clock: string;
  values: Record<string, number>;
}

export type BrokerKind = "embedded" | "mosquitto";

/**
 * A cloud process on a fresh PGlite database behind either the embedded Aedes broker (its own
 * TLS listener, MQTT 3.1.1) or a real Mosquitto 2 started for the test (MQTT 5), both
 * requiring client certificates from the test CA. Processes stop with stopAllProcesses().
 */
export async function startCloudStack(options: { dir: string; pki: TestPki; broker: BrokerKind }): Promise<{
  api: ApiClient;
  brokerUrl: string;
  protocolVersion: 4 | 5;
  stop: () => Promise<void>;
}> {
  const { dir, pki } = options;
  const apiPort = await freePort();
  let brokerUrl: string;
  let protocolVersion: 4 | 5;
  let broker: CloudOptions["broker"];
  let stopBroker = async () => {};
  if (options.broker === "embedded") {
    const port = await freePort();
    brokerUrl = `mqtts://localhost:${port}`;
    protocolVersion = 4; // Aedes speaks MQTT 3.1.1 only.
    broker = { port, ...pki.server("localhost") };
  } else {
    const mosquitto = await startMosquitto({ dir, pki, cloudClientName: "cloud-ingest" });
    stopBroker = () => mosquitto.stop();
    // Tests that end with stopAllProcesses() (and never call stop()) must not leave it running.
    stopWithAllProcesses(stopBroker);
    brokerUrl = mosquitto.url.replace("127.0.0.1", "localhost");
    protocolVersion = 5;
  }
  const cloudConfig = writeCloudConfig({
    dir,
    apiPort,
    mqtt: { url: brokerUrl, protocolVersion, clientId: "cloud-ingest", ...pki.client("cloud-ingest") },
    ...(broker === undefined ? {} : { broker }),
  });
  const apiKey = createApiKey(cloudConfig);
  const cloud = await startCloud(cloudConfig);
  return {
    api: new ApiClient(cloud.apiUrl, apiKey),
    brokerUrl,
    protocolVersion,
    stop: async () => {
      await cloud.process.stop();
      await stopBroker();
    },
  };
}
