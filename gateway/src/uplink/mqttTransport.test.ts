import { isEdgemeterError } from "@edgemeter/shared";
import { probeTcp, requireService } from "@edgemeter/shared/testing";
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, it } from "vitest";
import { createMqttClient } from "./mqttTransport.js";

// The mTLS paths (verified broker, client certificate, a rejected or expired certificate) run
// against a TLS Mosquitto in test/e2e/uplinkContract.test.ts; these are the plain ones.
const haveBroker = requireService(
  "Mosquitto at 127.0.0.1:1883",
  await probeTcp("127.0.0.1", 1883),
  "apt install mosquitto",
);

const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync(true)));
});

function connected(client: MqttClient): Promise<void> {
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
}

describe("createMqttClient", () => {
  it("refuses a scheme it has no transport for, saying which", () => {
    let thrown: unknown;
    try {
      createMqttClient("http://broker.example:8883", { reconnectPeriod: 0 });
    } catch (error) {
      thrown = error;
    }
    expect(isEdgemeterError(thrown, "uplink.config")).toBe(true);
    expect(String((thrown as Error).message)).toContain("http");
  });

  it("reports a refused TLS connection as the client's error (port 1 answers nothing)", async () => {
    const client = createMqttClient("mqtts://127.0.0.1:1", { reconnectPeriod: 0, connectTimeout: 2_000 });
    clients.push(client);
    // mqtt.js reports a refused connection twice (the transport and the client's stream
    // handler, as with its own TLS transport): the uplink keeps a listener for good, so does this.
    const errors: Error[] = [];
    const error = await new Promise<Error>((resolve) =>
      client.on("error", (e) => {
        errors.push(e);
        resolve(e);
      }),
    );
    expect((error as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
    expect(errors.every((e) => (e as NodeJS.ErrnoException).code === "ECONNREFUSED")).toBe(true);
  });

  describe.runIf(haveBroker)("against Mosquitto at 127.0.0.1:1883", () => {
    it("connects over mqtt:// and publishes with QoS 1", async () => {
      const client = createMqttClient("mqtt://127.0.0.1:1883", {
        clientId: `transport-${process.pid}`,
        reconnectPeriod: 0,
      });
      await connected(client);
      await expect(client.publishAsync("edgemeter-test/transport", "x", { qos: 1 })).resolves.toBeDefined();
    });

    it("takes 1883 when mqtt:// names no port", async () => {
      const client = createMqttClient("mqtt://127.0.0.1", {
        clientId: `transport-default-${process.pid}`,
        reconnectPeriod: 0,
      });
      await connected(client);
      expect(client.connected).toBe(true);
    });
  });
});
