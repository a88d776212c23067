import path from "node:path";
import { loadProfile } from "@edgemeter/hardware";
import { isEdgemeterError } from "@edgemeter/shared";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../config/loadConfig.js";

const BASE = `gatewayId: gw-demo
uplink: { kind: mqtt, url: "mqtt://127.0.0.1:1883" }
buses:
  - id: bus1
    transport: tcp
    host: 127.0.0.1
    meters: [{ id: meter-1, unitId: 1, profile: sdm630 }]
`;
const SDM630 = loadProfile("sdm630");
const FILE = path.resolve("/etc/edgemeter/gateway.yaml");
const parse = (text: string) => parseConfig(text, FILE, { loadProfile: () => SDM630 });

describe("gateway.yaml status section", () => {
  it("is optional: without it the gateway serves no page", () => {
    expect(parse(BASE).status).toBeUndefined();
  });

  it("defaults to port 8080 on all interfaces and resolves the hash file against the config's folder", () => {
    const config = parse(`${BASE}status: { passwordHashFile: status.scrypt }\n`);
    expect(config.status).toEqual({
      host: "0.0.0.0",
      port: 8080,
      passwordHashFile: path.resolve("/etc/edgemeter/status.scrypt"),
      sessionTtlMinutes: 720,
    });
  });

  it("names the file and the field of a bad status section", () => {
    try {
      parse(`${BASE}status: { port: 70000, password: hunter2 }\n`);
      expect.unreachable();
    } catch (error) {
      expect(isEdgemeterError(error, "config.invalid")).toBe(true);
      const message = (error as Error).message;
      expect(message).toContain(`${FILE}: status.port`);
      expect(message).toContain(`${FILE}: status.passwordHashFile`);
      // A plain password in the config is refused (strict object): only its hash is configured.
      expect(message).toMatch(/status.*password/);
    }
  });
});
