/**
 * `npm start` on a fresh data directory: the launcher provisions a demo CA, starts the cloud
 * (embedded broker + PGlite + API), the simulator and the gateway, prints `api:` and
 * `api-key:`, and readings of the three simulated meters reach the API. SIGINT stops all of
 * it; a second start reuses the certificates and the API key.
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { freePort, tempDir, waitFor } from "@edgemeter/shared/testing";
import { afterAll, describe, expect, it } from "vitest";
import { BIN, startNode, stopAllProcesses } from "../support/processes.js";
import { ApiClient, type ApiReading } from "../support/stack.js";

describe("npm start (scripts/start.ts)", () => {
  const data = tempDir("npm-start");
  afterAll(async () => {
    await stopAllProcesses();
    data.remove();
  });

  async function launch() {
    const env = {
      EDGEMETER_DATA_DIR: data.dir,
      EDGEMETER_API_PORT: String(await freePort()),
      EDGEMETER_BROKER_PORT: String(await freePort()),
      EDGEMETER_SIMULATOR_PORT: String(await freePort()),
      EDGEMETER_STATUS_PORT: String(await freePort()),
    };
    const launcher = startNode("npm-start", BIN.start, [], { env });
    const [, apiUrl] = await launcher.waitForLine(/^api: (http\S+)$/, 90_000);
    const [, apiKey] = await launcher.waitForLine(/^api-key: (\S+)$/, 5_000);
    const [, statusUrl] = await launcher.waitForLine(/^status: (http\S+)$/, 5_000);
    const [, statusPassword] = await launcher.waitForLine(/^status-password: (\S+)$/, 5_000);
    // The printed password opens the gateway's status page (issue 6).
    const login = await fetch(`${statusUrl}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ password: statusPassword as string }),
      redirect: "manual",
    });
    expect(login.status).toBe(303);
    return { launcher, api: new ApiClient(apiUrl as string, apiKey as string), apiKey: apiKey as string };
  }

  it("runs the whole system, serves readings of three meters, and stops cleanly on SIGINT", async () => {
    const { launcher, api, apiKey } = await launch();
    const startedMs = Date.now();

    // Certificates and the key file exist and are private.
    for (const file of [
      "pki/ca.key.pem",
      "pki/gateways/gw-demo/key.pem",
      "demo-api-key",
      "status-password",
      "bundle/gw-demo/technician-password.scrypt", // the provisioning bundle's hash (scripts/start.ts)
    ]) {
      const full = path.join(data.dir, file);
      expect(existsSync(full), file).toBe(true);
      expect(statSync(full).mode & 0o077, `${file} is not private`).toBe(0);
    }

    const meters = await waitFor(
      async () => {
        const { status, body } = await api.get<{ items: { meterId: string; gatewayId: string }[] }>("/v1/meters");
        return status === 200 && body.items.length >= 3 ? body.items : undefined;
      },
      "three meters in the API",
      60_000,
      250,
    );
    expect(meters.map((m) => m.meterId).sort()).toEqual(["meter-1", "meter-2", "meter-3"]);
    expect(new Set(meters.map((m) => m.gatewayId))).toEqual(new Set(["gw-demo"]));

    const readings = await waitFor(
      async () => {
        const { body } = await api.get<{ items: ApiReading[] }>(
          `/v1/meters/meter-2/readings?from=${new Date(startedMs - 120_000).toISOString()}`,
        );
        return body.items.length >= 2 ? body.items : undefined;
      },
      "readings of meter-2",
      30_000,
    );
    for (const reading of readings) {
      expect(reading.values.voltageL1V).toBeGreaterThan(200);
      expect(reading.values.voltageL1V).toBeLessThan(260);
      expect(reading.values.frequencyHz).toBeGreaterThan(49.5);
      expect(reading.values.frequencyHz).toBeLessThan(50.5);
      expect(reading.values.importEnergyKwh).toBeGreaterThan(0);
    }

    // Without a key the API refuses.
    const anonymous = await fetch(`${api.baseUrl}/v1/meters`);
    expect(anonymous.status).toBe(401);

    launcher.child.kill("SIGINT");
    const exit = await launcher.exited();
    expect(exit.code).toBe(0);
    expect(launcher.output()).toMatch(/^stopped$/m);

    // A second start keeps the CA and prints the same key.
    const again = await launch();
    expect(again.apiKey).toBe(apiKey);
    again.launcher.child.kill("SIGINT");
    expect((await again.launcher.exited()).code).toBe(0);
  }, 240_000);
});
