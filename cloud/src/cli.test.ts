import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { topicFor } from "@edgemeter/shared";
import { probeTcp, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** The built CLI: spawned processes run the `tsc -b` output (npm test builds first). */
const CLI = fileURLToPath(new URL("../dist/cli.js", import.meta.url));
const RUN = randomBytes(4).toString("hex");

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, DATABASE_URL: "", ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("edgemeter-cloud CLI", () => {
  const dir = tempDir("cloud-cli");
  let mosquitto = false;
  let serve: ChildProcess | null = null;

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -b cloud\` first`);
    mosquitto = requireService("Mosquitto", await probeTcp("127.0.0.1", 1883), "expected plain MQTT at 127.0.0.1:1883");
  });
  afterAll(() => {
    serve?.kill("SIGKILL");
    dir.remove();
  });

  it("rejects a bad config with file: path: message and exit code 2", () => {
    const file = path.join(dir.dir, "bad.yaml");
    writeFileSync(file, "api: { port: 99999, color: blue }\nmqtt: { url: 'mqtts://h:8883', clientId: x }\n");
    const result = run(["migrate", "--config", file], dir.dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}: api.port: `);
    expect(result.stderr).toContain(`${file}: api: Unrecognized key: "color"`);
    expect(result.stderr).toContain(`${file}: mqtt.caFile: required for a TLS url`);
    expect(run(["frobnicate", "--config", file], dir.dir).code).toBe(2);
    expect(run(["serve", "--bogus"], dir.dir).code).toBe(2);
  });

  it("serve lands a published batch that the API then serves; apikey create/revoke; SIGTERM stops it", async (context) => {
    if (!mosquitto) context.skip();
    const config = path.join(dir.dir, "cloud.yaml");
    writeFileSync(
      config,
      [
        "dataDir: ./cloud-data",
        "mqtt:",
        "  url: mqtt://127.0.0.1:1883",
        "  protocolVersion: 5",
        `  clientId: cli-test-${RUN}`,
        // Our own group, and no session left behind to collect messages after the test.
        `  shareGroup: cli-test-${RUN}`,
        "  sessionExpirySec: 0",
        "api: { host: 127.0.0.1, port: 0 }",
        "log: { level: warn }",
      ].join("\n"),
    );

    const created = run(["apikey", "create", "--name", "cli-test", "--scope", "admin", "--config", config], dir.dir);
    expect(created.code, created.stderr).toBe(0);
    const key = /em_[A-Za-z0-9_-]{43}/.exec(created.stdout)?.[0];
    expect(key).toBeDefined();
    const doomed = run(["apikey", "create", "--name", "doomed", "--config", config], dir.dir);
    const doomedKey = /em_[A-Za-z0-9_-]{43}/.exec(doomed.stdout)?.[0] ?? "";
    const doomedId = /id: (\d+)/.exec(doomed.stdout)?.[1] ?? "";
    expect(run(["apikey", "revoke", "--id", doomedId, "--config", config], dir.dir).code).toBe(0);
    expect(run(["apikey", "revoke", "--id", "424242", "--config", config], dir.dir).code).toBe(1);

    const child = spawn(process.execPath, [CLI, "serve", "--config", config], {
      cwd: dir.dir,
      env: { ...process.env, DATABASE_URL: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    serve = child;
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const apiUrl = await waitFor(
      () => /^api: (\S+)$/m.exec(stdout)?.[1],
      `"api:" from serve (stderr: ${stderr})`,
      60_000,
    );

    // PGlite's data directory belongs to the running serve: a second process is refused, not let in to corrupt it.
    const second = run(["migrate", "--config", config], dir.dir);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/in use by process \d+/);

    const gatewayId = `gw-cli-${RUN}`;
    const meterId = `m-cli-${RUN}`;
    const publisher = await mqtt.connectAsync("mqtt://127.0.0.1:1883", { protocolVersion: 5 });
    await publisher.publishAsync(
      topicFor("telemetry", gatewayId),
      JSON.stringify({
        v: 1,
        gatewayId,
        batchId: "b1",
        sentAt: "2026-11-22T10:00:01.000Z",
        readings: [{ meterId, seq: 7, ts: "2026-11-22T10:00:00.000Z", clock: "synced", values: { voltageL1V: 229.5 } }],
      }),
      { qos: 1 },
    );
    await publisher.endAsync();

    const get = async (route: string, apiKey = key ?? "") => {
      const response = await fetch(`${apiUrl}${route}`, { headers: { "x-api-key": apiKey } });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const readings = await waitFor(async () => {
      const response = await get(`/v1/meters/${meterId}/readings?from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z`);
      return response.status === 200 ? response.body : undefined;
    }, "the reading through the API");
    expect(readings.items).toEqual([expect.objectContaining({ gatewayId, seq: 7, values: { voltageL1V: 229.5 } })]);
    // The shared test broker carries other tests' traffic too, so the counters are lower bounds.
    const { stats } = (await get("/v1/ingest/stats")).body as { stats: { landed: number; inserted: number } };
    expect(stats.landed).toBeGreaterThanOrEqual(1);
    expect(stats.inserted).toBeGreaterThanOrEqual(1);
    expect((await get("/v1/meters", doomedKey)).status).toBe(401);

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    serve = null;
  });
});
