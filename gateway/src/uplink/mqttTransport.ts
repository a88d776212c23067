import { createRequire } from "node:module";
import net from "node:net";
import tls from "node:tls";
import { EdgemeterError } from "@edgemeter/shared/core";
import type { IClientOptions, MqttClient } from "mqtt";
import mqttClientModule from "mqtt/lib/client";
import type { StreamBuilder } from "mqtt/lib/shared";

// mqtt.js's build is CommonJS with `exports.default = MqttClient`: Node (and TypeScript under
// NodeNext) give the default import as the module object, whose `.default` is the class;
// Vite's interop (the tests) gives the class itself.
type MqttClientConstructor = typeof mqttClientModule.default;
const MqttClientClass: MqttClientConstructor =
  typeof (mqttClientModule as unknown) === "function"
    ? (mqttClientModule as unknown as MqttClientConstructor)
    : mqttClientModule.default;

/**
 * An mqtt.js client for `url`. For mqtt://, mqtts:// (ssl://, tls://) the socket comes from
 * node:net or node:tls directly, through mqtt.js's documented `new MqttClient(streamBuilder,
 * options)`; mqtt.js's `connect()` would load every transport it knows on first use (WebSocket,
 * SOCKS proxy, Alipay and WeChat mini-programs: ~0.3 MB of source, ~1.4 MB of heap for the
 * gateway's lifetime, issue 4 footprint). ws:// and wss:// still go through `connect()`,
 * loaded only then. Synchronous, as mqtt.js's connect(): the uplink keeps one client.
 */
export function createMqttClient(url: string, options: IClientOptions): MqttClient {
  const parsed = new URL(url);
  const scheme = parsed.protocol.replace(/:$/, "");
  if (scheme === "ws" || scheme === "wss") {
    const { connect } = createRequire(import.meta.url)("mqtt") as typeof import("mqtt");
    return connect(url, options);
  }
  // URL keeps an IPv6 literal in brackets; net and tls want it bare.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost";
  const secure = scheme === "mqtts" || scheme === "ssl" || scheme === "tls";
  if (!secure && scheme !== "mqtt" && scheme !== "tcp") {
    throw new EdgemeterError(
      "uplink.config",
      `unsupported uplink URL scheme "${scheme}" in ${url}: use mqtts://, mqtt://, ws:// or wss://`,
    );
  }
  const port = parsed.port === "" ? (secure ? 8883 : 1883) : Number(parsed.port);
  const builder: StreamBuilder = secure
    ? (client) => tlsStream(client, { host, port, options })
    : () => net.createConnection({ host, port });
  return new MqttClientClass(builder, options);
}

/**
 * What mqtt.js's own TLS transport does: SNI with a host name (not an IP address), the
 * broker's certificate checked unless rejectUnauthorized is false, and an error before the
 * handshake completed (refused, expired or unknown certificate) reported as the client's
 * "error" with the socket ended, so the client closes and says why.
 */
function tlsStream(client: MqttClient, target: { host: string; port: number; options: IClientOptions }): tls.TLSSocket {
  const { host, port, options } = target;
  const rejectUnauthorized = options.rejectUnauthorized !== false;
  const socket = tls.connect({
    host,
    port,
    ...(net.isIP(host) === 0 ? { servername: host } : {}),
    ca: options.ca,
    cert: options.cert,
    key: options.key,
    rejectUnauthorized,
  });
  const beforeHandshake = (error: Error) => {
    if (rejectUnauthorized) client.emit("error", error);
    socket.end();
  };
  socket.on("error", beforeHandshake);
  socket.on("secureConnect", () => {
    if (rejectUnauthorized && !socket.authorized) socket.emit("error", new Error("TLS not authorized"));
    else socket.removeListener("error", beforeHandshake);
  });
  return socket;
}
