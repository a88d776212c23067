import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isEdgemeterError } from "@edgemeter/shared";
import { describe, expect, it } from "vitest";
import { defaultClientId, parseCloudConfig } from "./cloudConfig.js";

const FILE = "/etc/edgemeter/cloud.yaml";

function problems(text: string): string {
  try {
    parseCloudConfig(text, FILE, {});
  } catch (error) {
    expect(isEdgemeterError(error, "config.invalid")).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("cloud config", () => {
  it("fills defaults and resolves paths against the config file's folder", () => {
    const config = parseCloudConfig("mqtt: { url: 'mqtt://127.0.0.1:1883' }\n", FILE, {});
    expect(config).toEqual({
      file: FILE,
      dataDir: "/etc/edgemeter/.edgemeter/cloud",
      api: { host: "127.0.0.1", port: 8081 },
      log: { level: "info" },
      platform: {
        defaultTimeZone: "UTC",
        pollIntervalMs: 900_000,
        silencePollIntervals: 4,
        rateLimitPerMinute: 600,
        bodyLimitBytes: 65_536,
      },
      mqtt: {
        url: "mqtt://127.0.0.1:1883",
        protocolVersion: 5,
        clientId: defaultClientId(),
        shareGroup: "edgemeter-ingest",
        sessionExpirySec: 86_400,
        connections: 1,
      },
    });
    expect(defaultClientId()).toMatch(/^cloud-ingest-[A-Za-z0-9._-]+$/);
  });

  it("parses the example file, with TLS files made absolute", () => {
    const text = readFileSync(fileURLToPath(new URL("./cloud.example.yaml", import.meta.url)), "utf8");
    const config = parseCloudConfig(text, FILE, {});
    expect(config.mqtt).toMatchObject({
      protocolVersion: 4,
      caFile: "/etc/edgemeter/pki/ca.pem",
      clientId: "cloud-ingest",
    });
    expect(config.broker).toEqual({
      host: "127.0.0.1",
      port: 8883,
      caFile: "/etc/edgemeter/pki/ca.pem",
      certFile: "/etc/edgemeter/pki/broker.pem",
      keyFile: "/etc/edgemeter/pki/broker-key.pem",
    });
    expect(config.databaseUrl).toBeUndefined();
  });

  it("lets DATABASE_URL override databaseUrl", () => {
    const text = "databaseUrl: postgres://a@db/one\n";
    expect(parseCloudConfig(text, FILE, {}).databaseUrl).toBe("postgres://a@db/one");
    expect(parseCloudConfig(text, FILE, { DATABASE_URL: "postgres://b@db/two" }).databaseUrl).toBe(
      "postgres://b@db/two",
    );
    expect(parseCloudConfig("{}", FILE, { DATABASE_URL: "postgres://b@db/two" }).databaseUrl).toBe(
      "postgres://b@db/two",
    );
  });

  it("names the file and path of every problem", () => {
    const message = problems(
      [
        "dataDir: 42",
        "databaseUrl: mysql://x",
        "api: { port: 70000, colour: red }",
        "mqtt: { url: 'mqtts://h:8883', protocolVersion: 3 }",
      ].join("\n"),
    );
    expect(message.split("\n")).toEqual(
      expect.arrayContaining([
        `${FILE}: dataDir: Invalid input: expected string, received number`,
        `${FILE}: databaseUrl: must be a postgres:// URL`,
        `${FILE}: api: Unrecognized key: "colour"`,
        `${FILE}: mqtt.protocolVersion: must be 4 (MQTT 3.1.1) or 5`,
      ]),
    );
    expect(message).toContain(`${FILE}: api.port: `);
    expect(problems("mqtt: { url: 'mqtts://h:8883', caFile: ca.pem }")).toBe(
      [
        `${FILE}: mqtt.certFile: required for a TLS url (the cloud connects with mTLS)`,
        `${FILE}: mqtt.keyFile: required for a TLS url (the cloud connects with mTLS)`,
      ].join("\n"),
    );
  });

  it("refuses MQTT 5 towards the embedded broker, which speaks 3.1.1 only", () => {
    const message = problems(
      [
        "mqtt: { url: 'mqtts://127.0.0.1:8883', caFile: c, certFile: c, keyFile: k }",
        "broker: { port: 8883, caFile: c, certFile: c, keyFile: k }",
      ].join("\n"),
    );
    expect(message).toBe(
      `${FILE}: mqtt.protocolVersion: must be 4 to connect to the embedded broker (it speaks MQTT 3.1.1 only)`,
    );
  });

  it("reports YAML syntax errors with their line", () => {
    expect(problems("log:\n  level: [info\n")).toMatch(new RegExp(`^${FILE}: line \\d+: `));
  });
});
