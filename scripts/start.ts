/**
 * `npm start`: the whole edgemeter system on embedded defaults, on one machine.
 *
 * Every part runs as its own process through its production command line, exactly as it
 * would on a Raspberry Pi and a cloud host; only the wiring is local:
 *   1. provisioning: a demo CA and certificates (broker server, gateway, cloud ingest client),
 *      made once in the data directory;
 *   2. `edgemeter-cloud serve`: the embedded MQTT broker (Aedes, TLS with client certificates),
 *      ingest, the PGlite database and the REST API;
 *   3. `edgemeter-simulator`: three simulated Eastron SDM630 meters over Modbus TCP;
 *   4. `edgemeter-gateway run`: polls them, buffers in SQLite, publishes over MQTT with mTLS,
 *      and serves the technicians' status page (password made once, kept in the data directory).
 * State lives in one data directory (`./.edgemeter` unless EDGEMETER_DATA_DIR says otherwise).
 * Ctrl-C (or SIGTERM) stops the gateway, the simulator and the cloud, in that order.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const DATA_DIR = path.resolve(process.env.EDGEMETER_DATA_DIR ?? path.join(ROOT, ".edgemeter"));
const HOST = "127.0.0.1";
const PORTS = {
  api: envPort("EDGEMETER_API_PORT", 8081),
  broker: envPort("EDGEMETER_BROKER_PORT", 8883),
  simulator: envPort("EDGEMETER_SIMULATOR_PORT", 5020),
  status: envPort("EDGEMETER_STATUS_PORT", 8080),
};
const GATEWAY_ID = "gw-demo";
const CLOUD_CLIENT = "cloud-ingest";
const METER_COUNT = 3;

const BIN = {
  provision: path.join(ROOT, "provisioning/dist/cli.js"),
  cloud: path.join(ROOT, "cloud/dist/cli.js"),
  simulator: path.join(ROOT, "hardware/dist/simulator/cli.js"),
  gateway: path.join(ROOT, "gateway/dist/cli.js"),
};

function envPort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`${name}: must be a TCP port number, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return port;
}

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** Runs a one-off CLI step to completion; its output goes to the log; fails loudly. */
function runStep(what: string, args: string[], input?: string): string {
  const result = spawnSync(process.execPath, args, {
    cwd: ROOT,
    encoding: "utf8",
    ...(input === undefined ? {} : { input }),
  });
  if (result.status !== 0) {
    console.error(`${what} failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
    process.exit(1);
  }
  return result.stdout;
}

function provision(): void {
  const pki = path.join(DATA_DIR, "pki");
  if (!existsSync(path.join(pki, "ca.cert.pem"))) {
    runStep("ca init", [BIN.provision, "ca", "init", "--dir", pki, "--cn", "edgemeter demo CA"]);
    say(`made a demo certificate authority in ${pki}`);
  }
  const issue = (kind: "server" | "gateway" | "client", name: string) => {
    if (!existsSync(path.join(pki, `${kind}s`, name, "cert.pem"))) {
      runStep(`cert issue --${kind} ${name}`, [BIN.provision, "cert", "issue", `--${kind}`, name, "--dir", pki]);
    }
  };
  issue("server", "localhost");
  issue("gateway", GATEWAY_ID);
  issue("client", CLOUD_CLIENT);
}

function certFiles(kind: string, name: string) {
  const dir = path.join(DATA_DIR, "pki", `${kind}s`, name);
  return {
    caFile: path.join(DATA_DIR, "pki", "ca.cert.pem"),
    certFile: path.join(dir, "cert.pem"),
    keyFile: path.join(dir, "key.pem"),
  };
}

/**
 * The status page's technician password: made once and kept (0600) so restarts print the same
 * one; the gateway gets only its scrypt hash, from the gateway's provisioning bundle
 * (`edgemeter-provision bundle`, what would go onto its SD card), remade when the password changes.
 */
function demoStatusPassword(): { password: string; hashFile: string } {
  const passwordFile = path.join(DATA_DIR, "status-password");
  const bundleDir = path.join(DATA_DIR, "bundle", GATEWAY_ID);
  const hashFile = path.join(bundleDir, "technician-password.scrypt");
  let password: string;
  if (existsSync(passwordFile)) password = readFileSync(passwordFile, "utf8").trim();
  else {
    password = randomBytes(12).toString("base64url");
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    chmodSync(passwordFile, 0o600);
  }
  if (!existsSync(hashFile) || statSync(hashFile).mtimeMs < statSync(passwordFile).mtimeMs) {
    runStep("bundle", [
      ...[BIN.provision, "bundle", "--gateway", GATEWAY_ID, "--out", bundleDir, "--force"],
      ...["--dir", path.join(DATA_DIR, "pki"), "--password-file", passwordFile],
      ...["--broker-url", `mqtts://localhost:${PORTS.broker}`, "--protocol", "4"],
    ]);
  }
  return { password, hashFile };
}

/** Configuration files are regenerated each start: the data directory is the demo's, not the user's. */
function writeConfigs(statusHashFile: string): { cloud: string; gateway: string } {
  const cloud = path.join(DATA_DIR, "cloud.yaml");
  const gateway = path.join(DATA_DIR, "gateway.yaml");
  const cloudClient = certFiles("client", CLOUD_CLIENT);
  const server = certFiles("server", "localhost");
  const gw = certFiles("gateway", GATEWAY_ID);
  // The embedded Aedes broker speaks MQTT 3.1.1 only; its clients use protocolVersion 4
  // (see cloud/src/broker/aedesBroker.ts for why that loses nothing).
  writeFileSync(
    cloud,
    [
      "# Written by `npm start` (scripts/start.ts): embedded broker and PGlite database.",
      `dataDir: ${JSON.stringify(path.join(DATA_DIR, "cloud"))}`,
      "broker:",
      `  host: ${HOST}`,
      `  port: ${PORTS.broker}`,
      `  caFile: ${JSON.stringify(server.caFile)}`,
      `  certFile: ${JSON.stringify(server.certFile)}`,
      `  keyFile: ${JSON.stringify(server.keyFile)}`,
      "mqtt:",
      `  url: mqtts://localhost:${PORTS.broker}`,
      "  protocolVersion: 4",
      `  clientId: ${CLOUD_CLIENT}`,
      `  caFile: ${JSON.stringify(cloudClient.caFile)}`,
      `  certFile: ${JSON.stringify(cloudClient.certFile)}`,
      `  keyFile: ${JSON.stringify(cloudClient.keyFile)}`,
      "api:",
      `  host: ${HOST}`,
      `  port: ${PORTS.api}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const meters = Array.from({ length: METER_COUNT }, (_, i) =>
    [
      `        - id: meter-${i + 1}`,
      `          unitId: ${i + 1}`,
      "          profile: sdm630",
      "          pollIntervalMs: 1000",
    ].join("\n"),
  );
  writeFileSync(
    gateway,
    [
      "# Written by `npm start` (scripts/start.ts): three simulated SDM630 meters over Modbus TCP.",
      `gatewayId: ${GATEWAY_ID}`,
      `dataDir: ${JSON.stringify(path.join(DATA_DIR, "gateway"))}`,
      "uplink:",
      "  kind: mqtt",
      `  url: mqtts://localhost:${PORTS.broker}`,
      "  protocolVersion: 4",
      `  caFile: ${JSON.stringify(gw.caFile)}`,
      `  certFile: ${JSON.stringify(gw.certFile)}`,
      `  keyFile: ${JSON.stringify(gw.keyFile)}`,
      "status:",
      `  host: ${HOST}`,
      `  port: ${PORTS.status}`,
      `  passwordHashFile: ${JSON.stringify(statusHashFile)}`,
      "buses:",
      "  - id: sim",
      "    transport: tcp",
      `    host: ${HOST}`,
      `    port: ${PORTS.simulator}`,
      "    timeoutMs: 1000",
      "    meters:",
      ...meters,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  return { cloud, gateway };
}

/** The demo API key is made once and kept (0600) so restarts print the same key. */
function demoApiKey(cloudConfig: string): string {
  const keyFile = path.join(DATA_DIR, "demo-api-key");
  if (existsSync(keyFile)) return readFileSync(keyFile, "utf8").trim();
  const out = runStep("apikey create", [
    BIN.cloud,
    "apikey",
    "create",
    "--name",
    "demo",
    "--scope",
    "admin",
    "--config",
    cloudConfig,
  ]);
  const key = /em_[A-Za-z0-9_-]+/.exec(out)?.[0];
  if (key === undefined) {
    console.error(`apikey create printed no key:\n${out}`);
    process.exit(1);
  }
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  return key;
}

const children: { name: string; child: ChildProcess }[] = [];
let stopping = false;

/**
 * Starts a long-running part; its output goes to `logs/<name>.log`. Resolves with the first
 * stdout line matching `ready` (the line each CLI prints once it serves).
 */
function startPart(name: string, args: string[], ready: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  const logFile = path.join(DATA_DIR, "logs", `${name}.log`);
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  children.push({ name, child });
  child.stderr?.pipe(log);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start within ${timeoutMs} ms; see ${logFile}`)),
      timeoutMs,
    );
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      log.write(`${line}\n`);
      const match = ready.exec(line);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (!stopping) {
        console.error(`${name} exited (${signal ?? `code ${code}`}); see ${logFile}`);
        reject(new Error(`${name} exited`));
        void stopAll(1);
      }
    });
  });
}

async function stopAll(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Gateway first (it flushes what it can), then the simulator, then the cloud and its broker.
  for (const { name, child } of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 10_000).unref());
    if ((await Promise.race([exited, timeout])) === "timeout") {
      console.error(`${name} did not stop within 10 s; killing it`);
      child.kill("SIGKILL");
      await exited;
    }
  }
  say("stopped");
  process.exit(exitCode);
}

async function main(): Promise<void> {
  for (const file of Object.values(BIN)) {
    if (!existsSync(file)) {
      console.error(`${file} is missing: build first with \`npx tsc -b\` (npm start does this)`);
      process.exit(1);
    }
  }
  mkdirSync(path.join(DATA_DIR, "logs"), { recursive: true, mode: 0o700 });
  process.once("SIGINT", () => void stopAll(0));
  process.once("SIGTERM", () => void stopAll(0));

  provision();
  const statusPassword = demoStatusPassword();
  const configs = writeConfigs(statusPassword.hashFile);
  const apiKey = demoApiKey(configs.cloud);

  const [, apiUrl] = await startPart("cloud", [BIN.cloud, "serve", "--config", configs.cloud], /^api: (\S+)/);
  await startPart(
    "simulator",
    [
      BIN.simulator,
      "--host",
      HOST,
      "--port",
      String(PORTS.simulator),
      "--meters",
      String(METER_COUNT),
      "--profile",
      "sdm630",
    ],
    /^simulator: /,
  );
  await startPart("gateway", [BIN.gateway, "run", "--config", configs.gateway], /^gateway: /);

  say(`api: ${apiUrl}`);
  say(`api-key: ${apiKey}`);
  say(`status: http://${HOST}:${PORTS.status}`);
  say(`status-password: ${statusPassword.password}`);
  say(`logs: ${path.join(DATA_DIR, "logs")}`);
  say(`try: curl -H 'x-api-key: ${apiKey}' ${apiUrl}/v1/meters`);
  say("Ctrl-C stops everything.");
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  void stopAll(1);
});
