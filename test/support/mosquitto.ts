/**
 * A real Mosquitto 2 broker with mutual TLS for tests: the same ACL shape a site
 * installation uses (a gateway may publish only under its own topic root, named by its
 * certificate CN), on a free port, with its log kept for failing tests to show.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { findBinary, freePort, probeTcp, waitFor } from "@edgemeter/shared/testing";
import type { TestPki } from "./pki.js";

const STOP_TIMEOUT_MS = 5_000;
const START_TIMEOUT_MS = 10_000;

/** The `mosquitto` binary, or null (then tests needing it skip, or fail under CI=true). */
export function mosquittoBinary(): string | null {
  return findBinary("mosquitto", ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]);
}

/** For `requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto")`. */
export function mosquittoAvailable(): boolean {
  return mosquittoBinary() !== null;
}

export interface MosquittoAclOptions {
  /** CN of the cloud service allowed to read every gateway's topics; default "cloud-ingest". */
  cloudClientName?: string;
}

/**
 * The site ACL. With `use_identity_as_username` the username is the certificate CN, so
 * `%u` is the gateway id and a gateway can publish under `edgemeter/v1/gw/<its id>/` only.
 * Mosquitto checks a `$share/<group>/<filter>` subscription against `<filter>`, so
 * `read edgemeter/v1/gw/#` also admits the ingest's shared subscription. Read access is
 * enforced per delivered message: a gateway's SUBACK for a wildcard may say granted, but
 * it receives nothing it may not read.
 */
export function mosquittoAcl(options: MosquittoAclOptions = {}): string {
  const lines = ["# gateways: their own topic root only", "pattern write edgemeter/v1/gw/%u/#", ""];
  lines.push("# the cloud ingest: reads every gateway", `user ${options.cloudClientName ?? "cloud-ingest"}`);
  lines.push("topic read edgemeter/v1/gw/#", "");
  return lines.join("\n");
}

export interface MosquittoOptions {
  /** Where the config, ACL, log (and persistence, if on) are written. */
  dir: string;
  /** Supplies the CA and the broker's certificate (`pki.server()`). */
  pki: TestPki;
  /** TLS is always on (the helper exists to test the mutual-TLS setup); accepted for readability. */
  tls?: true;
  /** Default: a free port. */
  port?: number;
  /** A ready ACL file; default one written from `mosquittoAcl({ cloudClients })`. */
  aclFile?: string;
  /** The cloud service's certificate CN for the default ACL; default "cloud-ingest". */
  cloudClientName?: string;
  /** Extra `mosquitto.conf` lines, appended last. */
  extraConfig?: readonly string[];
  /** Keep sessions and queued messages across restart(); default false. */
  persistence?: boolean;
}

export interface RunningMosquitto {
  port: number;
  /** `mqtts://127.0.0.1:PORT` */
  url: string;
  configFile: string;
  aclFile: string;
  logFile: string;
  /** The log so far (for assertion messages). */
  log(): string;
  /** SIGTERM, then waits for the process to exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** stop() then start again on the same port with the same configuration. */
  restart(): Promise<void>;
}

export function mosquittoConfig(options: {
  port: number;
  pki: TestPki;
  aclFile: string;
  logFile: string;
  persistenceDir?: string;
  extraConfig?: readonly string[];
}): string {
  const server = options.pki.server();
  const lines = [
    // Running as root, Mosquitto 2 drops to the `mosquitto` user unless told `user root`,
    // and that user could not read the 0600 keys the provisioning CLI writes.
    ...(process.getuid?.() === 0 ? ["user root"] : []),
    "per_listener_settings false",
    "allow_anonymous false",
    options.persistenceDir === undefined
      ? "persistence false"
      : `persistence true\npersistence_location ${options.persistenceDir}${path.sep}`,
    // The default (1000) silently drops QoS1 messages queued for a slow subscriber.
    "max_queued_messages 100000",
    `acl_file ${options.aclFile}`,
    `log_dest file ${options.logFile}`,
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "connection_messages true",
    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    `listener ${options.port} 127.0.0.1`,
    `cafile ${options.pki.caFile}`,
    `certfile ${server.certFile}`,
    `keyfile ${server.keyFile}`,
    "require_certificate true",
    // The certificate CN becomes the username: no passwords, and the ACL's %u is the gateway id.
    "use_identity_as_username true",
    // Minimum version: TLS 1.2 and 1.3 are accepted.
    "tls_version tlsv1.2",
    ...(options.extraConfig ?? []),
  ];
  return `${lines.join("\n")}\n`;
}

function readLog(logFile: string): string {
  try {
    return readFileSync(logFile, "utf8");
  } catch {
    return "";
  }
}

/** Starts a real `mosquitto -c <generated conf>` and resolves once its port accepts connections. */
export async function startMosquitto(options: MosquittoOptions): Promise<RunningMosquitto> {
  const binary = mosquittoBinary();
  if (binary === null) throw new Error("mosquitto is not installed (apt-get install mosquitto)");
  const port = options.port ?? (await freePort());
  const aclFile = options.aclFile ?? path.join(options.dir, "mosquitto.acl");
  if (options.aclFile === undefined) {
    writeFileSync(
      aclFile,
      mosquittoAcl(options.cloudClientName === undefined ? {} : { cloudClientName: options.cloudClientName }),
    );
  }
  const logFile = path.join(options.dir, "mosquitto.log");
  const configFile = path.join(options.dir, "mosquitto.conf");
  writeFileSync(
    configFile,
    mosquittoConfig({
      port,
      pki: options.pki,
      aclFile,
      logFile,
      ...(options.persistence === true ? { persistenceDir: options.dir } : {}),
      ...(options.extraConfig === undefined ? {} : { extraConfig: options.extraConfig }),
    }),
  );

  let child: ChildProcess | undefined;
  let stderr = "";

  const start = async (): Promise<void> => {
    stderr = "";
    const spawned = spawn(binary, ["-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
    child = spawned;
    spawned.stderr?.setEncoding("utf8");
    spawned.stderr?.on("data", (chunk: string) => {
      stderr += chunk;
    });
    let exited: string | undefined;
    spawned.once("exit", (code, signal) => {
      exited = `exited with ${code ?? signal}`;
    });
    try {
      await waitFor(
        async () => {
          if (exited !== undefined) throw new Error(exited);
          return (await probeTcp("127.0.0.1", port, 500)) ? true : undefined;
        },
        `mosquitto on port ${port}`,
        START_TIMEOUT_MS,
      );
    } catch (error) {
      spawned.kill("SIGKILL");
      throw new Error(
        `mosquitto did not start: ${(error as Error).message}\nstderr: ${stderr}\nlog: ${readLog(logFile)}\nconfig:\n${readFileSync(configFile, "utf8")}`,
      );
    }
    // A crash later (not a stop) would otherwise surface only as connection errors.
    if (exited !== undefined) throw new Error(`mosquitto ${exited}: ${stderr}`);
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const killTimer = setTimeout(() => running.kill("SIGKILL"), STOP_TIMEOUT_MS);
      running.once("exit", () => {
        clearTimeout(killTimer);
        resolve();
      });
      running.kill("SIGTERM");
    });
  };

  await start();
  return {
    port,
    url: `mqtts://127.0.0.1:${port}`,
    configFile,
    aclFile,
    logFile,
    log: () => readLog(logFile),
    stop,
    restart: async () => {
      await stop();
      await start();
    },
  };
}
