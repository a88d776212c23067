import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startSimulator } from "@edgemeter/hardware";
import { TelemetryPayload, topicFor } from "@edgemeter/shared";
import { probeTcp, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import Database from "better-sqlite3";
import { connectAsync } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";

/** The built CLI, as systemd runs it (`npm test` builds with `tsc -b` first). */
const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const haveCli = requireService("the built gateway CLI", existsSync(CLI), "run `npx tsc -b gateway` first");
const haveBroker = requireService(
  "Mosquitto at 127.0.0.1:1883",
  await probeTcp("127.0.0.1", 1883),
  "apt install mosquitto",
);

function runCli(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 20_000 });
}

describe.runIf(haveCli)("edgemeter-gateway CLI (built, as a child process)", () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  function workDir(): string {
    const { dir, remove } = tempDir("gateway-cli");
    cleanups.push(remove);
    return dir;
  }

  it("check-config: exits 2 and prints every problem as `file: path: message`", () => {
    const dir = workDir();
    const file = path.join(dir, "gateway.yaml");
    writeFileSync(
      file,
      `gatewayId: "gw demo"
uplink:
  kind: mqtt
  url: mqtts://127.0.0.1:8883
  caFile: ./ca.pem
  certFile: ./gw.pem
  keyFile: ./gw.key
  keepaliveS: 1
forwarder: { maxBatchReadings: 500, maxBatchBytes: 200000, idleFlushMs: 1000 }
buses:
  - id: bus1
    transport: tcp
    host: 127.0.0.1
    port: 5020
    meters:
      - { id: meter-1, unitId: 1, profile: sdm630, pollIntervalMs: 1000 }
      - { id: meter-1, unitId: 1, profile: no-such-profile }
  - id: bus2
    transport: tcp
    host: 127.0.0.1
    timeoutMs: 1000
    meters:
      - { id: meter-3, unitId: 1, profile: sdm630, pollIntervall: 5 }
log: { level: info }
`,
    );
    const result = runCli(["check-config", "--config", file]);
    expect(result.status).toBe(2);
    const lines = result.stderr.split("\n").filter((line) => line.startsWith(`${file}: `));
    const expected: Array<[string, string]> = [
      ["gatewayId", "must be 1-64 characters"],
      ["uplink.keepaliveS", ""],
      ["forwarder.maxBatchBytes", "128 KB"],
      ["buses.1.meters.0", 'Unrecognized key: "pollIntervall"'],
      ["uplink.caFile", `cannot read ${path.join(dir, "ca.pem")}: ENOENT`],
      ["uplink.certFile", "ENOENT"],
      ["uplink.keyFile", "ENOENT"],
      ["buses.0.meters.1.id", 'duplicate meter id "meter-1"'],
      ["buses.0.meters.1.unitId", "duplicate unit id 1 on bus bus1"],
      ["buses.0.meters.1.profile", "no-such-profile"],
    ];
    for (const [problemPath, message] of expected) {
      expect(lines.some((line) => line.startsWith(`${file}: ${problemPath}: `) && line.includes(message))).toBe(true);
    }
    // Unit ids are per bus: unit 1 on bus2 is fine.
    expect(lines.some((line) => line.includes("buses.1.meters.0.unitId"))).toBe(false);
    expect(lines).toHaveLength(expected.length);
  });

  it("run: exits 2 on a config that is not YAML, and on a missing file", () => {
    const dir = workDir();
    const file = path.join(dir, "gateway.yaml");
    writeFileSync(file, "gatewayId: [unclosed\n");
    const bad = runCli(["run", "--config", file]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain(`${file}: (root): YAML:`);
    const missing = runCli(["run", "--config", path.join(dir, "nope.yaml")]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(`${path.join(dir, "nope.yaml")}: (root): cannot read the file`);
  });

  it("exits 2 on an unknown command", () => {
    const result = runCli(["frobnicate"]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("unknown command: frobnicate");
  });

  it.runIf(haveBroker)(
    "run: polls the simulator, stores, forwards to Mosquitto, and stops cleanly on SIGTERM",
    async () => {
      const dir = workDir();
      const sim = await startSimulator({ port: 0, tickMs: 0, meters: [{ unitId: 3, profile: "sdm630" }] });
      cleanups.push(() => sim.close());
      const gatewayId = `gw-cli-${process.pid}`;
      const subscriber = await connectAsync("mqtt://127.0.0.1:1883", { protocolVersion: 5 });
      cleanups.push(async () => {
        await subscriber.publishAsync(topicFor("status", gatewayId), "", { qos: 1, retain: true });
        await subscriber.endAsync();
      });
      const batches: TelemetryPayload[] = [];
      subscriber.on("message", (topic, message) => {
        if (topic.endsWith("/telemetry")) batches.push(TelemetryPayload.parse(JSON.parse(message.toString())));
      });
      await subscriber.subscribeAsync(topicFor("telemetry", gatewayId), { qos: 1 });

      mkdirSync(path.join(dir, "etc"));
      const file = path.join(dir, "etc", "gateway.yaml");
      writeFileSync(
        file,
        `gatewayId: ${gatewayId}
dataDir: ../data
uplink: { kind: mqtt, url: "mqtt://127.0.0.1:1883", protocolVersion: 5 }
forwarder: { idleFlushMs: 100 }
buses:
  - { id: bus1, transport: tcp, host: 127.0.0.1, port: ${sim.port}, timeoutMs: 500,
      meters: [ { id: meter-3, unitId: 3, profile: sdm630, pollIntervalMs: 200 } ] }
log: { level: warn }
`,
      );
      const child = spawn(process.execPath, [CLI, "run", "--config", file], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      cleanups.push(() => child.exitCode === null && child.kill("SIGKILL"));

      await waitFor(
        () => (stdout.includes(`gateway: ${gatewayId} polling 1 meters on 1 buses`) ? true : undefined),
        "start line",
      );
      await waitFor(
        () => (batches.flatMap((b) => b.readings).length >= 3 ? true : undefined),
        "three readings on the broker",
      );
      const seqs = batches.flatMap((b) => b.readings.map((r) => r.seq));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      const first = batches[0]?.readings[0];
      expect(first?.meterId).toBe("meter-3");
      expect(first?.values.importEnergyKwh).toBeCloseTo(sim.snapshot(3).values.importEnergyKwh, 3);

      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      // dataDir resolved against the config file's folder; the outbox is closed and consistent.
      const db = new Database(path.join(dir, "data", "outbox.sqlite"), { readonly: true });
      try {
        const counter = db.prepare("SELECT next_seq FROM outbox_counter").get() as { next_seq: number };
        expect(counter.next_seq).toBeGreaterThanOrEqual(seqs.length);
      } finally {
        db.close();
      }
    },
  );
});
