import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { EdgemeterError } from "@edgemeter/shared/core";
import type { IClientOptions, MqttClient } from "mqtt";
import { ErrorWithReasonCode } from "mqtt/lib/shared";
import type { Logger } from "pino";
import { fullJitterBackoffMs } from "../forwarder/backoff.js";
import { RepeatedFailure } from "../logging/repeatedFailure.js";
import { type Clock, systemClock } from "../time/clock.js";
import { createMqttClient } from "./mqttTransport.js";
import { type StatusReporter, type UplinkStatusOptions, uplinkStatusReporter } from "./statusReport.js";
import type { PublishOptions, Uplink, UplinkProblem, UplinkState, UplinkStatus } from "./uplink.js";

/** Never retry sooner than this, whatever the jitter drew: no busy loop against a dead broker. */
const MIN_RECONNECT_DELAY_MS = 100;

export interface MqttUplinkOptions extends UplinkStatusOptions {
  gatewayId: string;
  /** `mqtts://host:8883` in production (mTLS); `mqtt://` only for tests and local demos. */
  url: string;
  /** 5 by default: only MQTT 5 reports a denied publish (PUBACK reason code), see DESIGN. */
  protocolVersion: 4 | 5;
  clientId: string;
  keepaliveS: number;
  /**
   * First reconnect delay ceiling: attempt n waits a uniformly random time in
   * [0, min(reconnectCapMs, reconnectPeriodMs * 2^(n-1))) (full jitter), at least 100 ms.
   */
  reconnectPeriodMs: number;
  /** Longest reconnect delay; default 60 s. Certificate problems wait this long at once. */
  reconnectCapMs?: number;
  /** A connection that lasted this long resets the backoff; default 60 s. A flapping one does not. */
  stablePeriodMs?: number;
  /** Jitter source in [0, 1), injectable for tests. */
  random?: () => number;
  connectTimeoutMs?: number;
  /** PEM files for mTLS; the certificate's CN is the gatewayId. */
  tls?: { caFile: string; certFile: string; keyFile: string };
  logger: Logger;
  clock?: Clock;
}

/** The Uplink over mqtt.js 5 (MQTT 5 or 3.1.1, TLS with client certificates). */
export class MqttUplink implements Uplink {
  private client: MqttClient | undefined;
  private currentState: UplinkState = "disconnected";
  private readonly listeners = new Set<(state: UplinkState) => void>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly logger: Logger;
  private readonly connectionFailure: RepeatedFailure;
  private readonly clock: Clock;
  private readonly statusReporter: StatusReporter;
  private attempt = 0;
  private problem: UplinkProblem | null = null;
  private detail: string | null = null;
  private nextAttemptAtMs: number | null = null;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private certificateExpiresAt: string | null = null;
  /** Message ids whose PUBACK said 16 "no matching subscribers" (seen on packetreceive, before the callback). */
  private readonly noSubscribers = new Set<number>();
  /** The error that ended the current attempt, classified at "close". */
  private lastError: Error | undefined;

  constructor(private readonly options: MqttUplinkOptions) {
    this.logger = options.logger;
    this.connectionFailure = new RepeatedFailure(this.logger, "the broker connection");
    this.clock = options.clock ?? systemClock;
    this.statusReporter = uplinkStatusReporter(
      options,
      {
        certificateExpiresAt: () => this.certificateExpiresAt,
        publish: (topic, payload, publishOptions) => this.publish(topic, payload, publishOptions),
      },
      this.clock,
      this.logger,
    );
  }

  get state(): UplinkState {
    return this.currentState;
  }

  async connect(): Promise<void> {
    if (this.client !== undefined) return;
    const clientOptions: IClientOptions = {
      protocolVersion: this.options.protocolVersion,
      clientId: this.options.clientId,
      keepalive: this.options.keepaliveS,
      // 0: mqtt.js's own reconnect uses a fixed period; we schedule reconnects ourselves with
      // capped full-jitter backoff (scheduleReconnect), so a fleet does not reconnect in lockstep.
      reconnectPeriod: 0,
      connectTimeout: this.options.connectTimeoutMs ?? 10_000,
      // clean: true. The gateway subscribes to nothing, so a persistent broker session would
      // hold nothing useful, and AWS IoT bills for it. QoS 1 publishes that were in flight
      // when the connection dropped are resent anyway: mqtt.js keeps them in its in-memory
      // outgoing store and replays it on every reconnect, whatever `clean` says. Neither
      // matters for durability: the outbox is the real store and deletes only after an ack.
      clean: true,
      // The broker publishes this retained status when the gateway vanishes without DISCONNECT.
      will: { topic: this.statusReporter.topic, payload: this.statusReporter.willPayload(), qos: 1, retain: true },
      // mqtt.js queues QoS 0 only; we never publish while offline anyway (see publish()).
      queueQoSZero: false,
      // Not mqtt-packet's table of the 65,536 two-byte numbers (message ids, lengths) as
      // preallocated Buffers: 6 MB of heap, and 65,536 more objects for every major GC to mark,
      // to save encoding two bytes a few times per batch (issue 4 footprint).
      writeCache: false,
    };
    if (this.options.tls !== undefined) {
      try {
        clientOptions.ca = readFileSync(this.options.tls.caFile);
        clientOptions.cert = readFileSync(this.options.tls.certFile);
        clientOptions.key = readFileSync(this.options.tls.keyFile);
        this.certificateExpiresAt = new Date(new X509Certificate(clientOptions.cert).validTo).toISOString();
      } catch (error) {
        throw new EdgemeterError("uplink.config", `cannot read the uplink TLS files: ${String(error)}`, {
          cause: error,
        });
      }
      clientOptions.rejectUnauthorized = true;
    }
    this.setState("connecting");
    const client = createMqttClient(this.options.url, clientOptions);
    this.client = client;
    client.on("connect", () => {
      this.connectionFailure.recover({ url: this.options.url, afterAttempts: this.attempt });
      this.logger.info({ url: this.options.url, protocolVersion: this.options.protocolVersion }, "connected to broker");
      this.problem = null;
      this.detail = null;
      this.lastError = undefined;
      this.nextAttemptAtMs = null;
      // Reset the backoff only once the connection has proven stable: a broker that accepts and
      // drops at once (a flapping link, a session taken over) must not be hammered.
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => {
        this.attempt = 0;
      }, this.options.stablePeriodMs ?? 60_000);
      this.stableTimer.unref();
      this.setState("connected");
      this.statusReporter.connected();
    });
    client.on("close", () => {
      clearTimeout(this.stableTimer);
      this.statusReporter.disconnected();
      if (this.currentState === "closed") return;
      const wasConnected = this.currentState === "connected";
      this.setState("disconnected");
      this.scheduleReconnect(wasConnected);
    });
    client.on("error", (error) => {
      this.lastError = error;
    });
    client.on("packetreceive", (packet) => {
      if (packet.cmd === "puback" && packet.reasonCode === 16 && packet.messageId !== undefined) {
        this.noSubscribers.add(packet.messageId);
      }
    });
  }

  status(): UplinkStatus {
    return {
      state: this.currentState,
      problem: this.currentState === "connected" ? null : this.problem,
      detail: this.currentState === "connected" ? null : this.detail,
      attempt: this.attempt,
      nextAttemptAt: this.nextAttemptAtMs === null ? null : new Date(this.nextAttemptAtMs).toISOString(),
      certificateExpiresAt: this.certificateExpiresAt,
    };
  }

  /** After a failed attempt or a lost connection: classify, log once, wait, try again. */
  private scheduleReconnect(wasConnected: boolean): void {
    const client = this.client;
    if (client === undefined || this.reconnectTimer !== undefined) return;
    const error = this.lastError;
    this.lastError = undefined;
    const expired = this.certificateExpiresAt !== null && Date.parse(this.certificateExpiresAt) <= this.clock.nowMs();
    const { problem, detail } = classifyConnectionFailure(error, wasConnected, expired, this.certificateExpiresAt);
    this.problem = problem;
    this.detail = detail;
    this.attempt++;
    const capMs = this.options.reconnectCapMs ?? 60_000;
    // A certificate does not heal in seconds: wait the cap at once instead of climbing to it.
    const certificate = problem === "certificateExpired" || problem === "certificateRejected";
    const delayMs = certificate
      ? capMs
      : Math.max(
          MIN_RECONNECT_DELAY_MS,
          fullJitterBackoffMs(this.attempt, this.options.reconnectPeriodMs, capMs, this.options.random ?? Math.random),
        );
    this.nextAttemptAtMs = this.clock.nowMs() + delayMs;
    this.connectionFailure.fail(
      { url: this.options.url, problem, err: detail, attempt: this.attempt, retryInMs: delayMs },
      `broker connection: ${PROBLEM_TEXT[problem]}`,
    );
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.currentState === "closed") return;
      this.nextAttemptAtMs = null;
      this.setState("connecting");
      client.reconnect();
    }, delayMs);
  }

  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void> {
    const client = this.client;
    // Refuse rather than let mqtt.js queue it: the caller keeps the data (the outbox) and
    // retries when connected, so nothing unbounded builds up in memory.
    if (client === undefined || this.currentState !== "connected") {
      return Promise.reject(
        new EdgemeterError("uplink.disconnected", `not connected to the broker (${this.currentState})`, {
          retryable: true,
          context: { topic },
        }),
      );
    }
    const message = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    const done = new Promise<void>((resolve, reject) => {
      client.publish(topic, message, { qos: options.qos, retain: options.retain ?? false }, (error, packet) => {
        const messageId = packet?.messageId;
        const nobody = messageId !== undefined && this.noSubscribers.delete(messageId);
        if ((error === undefined || error === null) && nobody && options.retain !== true) {
          // MQTT 5 PUBACK 16 "no matching subscribers": accepted, and thrown away. mqtt.js counts it
          // as a success; for telemetry it is a loss (a broker restart drops Mosquitto's shared
          // subscriptions until the cloud subscribes again): keep the batch and retry.
          reject(
            new EdgemeterError("uplink.noSubscribers", `nobody is subscribed to ${topic} (PUBACK 16)`, {
              retryable: true,
              context: { topic, reasonCode: 16 },
            }),
          );
          return;
        }
        if (error === undefined || error === null) {
          // Under MQTT 3.1.1 a PUBACK carries no reason code: a broker that denies the topic
          // acknowledges it all the same (Mosquitto), and the readings would be deleted
          // without having landed. The embedded Aedes broker instead closes the connection
          // on a denied publish (verified), so the callback fails and nothing is deleted.
          // That is why MQTT 5 is the default.
          resolve();
          return;
        }
        reject(toPublishError(error, topic));
      });
    });
    this.inFlight.add(done);
    const untrack = () => this.inFlight.delete(done);
    done.then(untrack, untrack);
    return done;
  }

  on(_event: "state", listener: (state: UplinkState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(deadlineMs = 2_000): Promise<void> {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearTimeout(this.stableTimer);
    this.statusReporter.disconnected();
    const client = this.client;
    if (client === undefined || this.currentState === "closed") {
      this.setState("closed");
      return;
    }
    await this.statusReporter.beforeDisconnect(this.currentState === "connected", this.inFlight, deadlineMs);
    this.setState("closed");
    // force: whatever is still unacknowledged stays in the outbox; mqtt.js fails its callbacks.
    await client.endAsync(true);
  }

  private setState(state: UplinkState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.logger.debug({ state }, "uplink state");
    for (const listener of this.listeners) listener(state);
  }
}

/**
 * mqtt.js 5.16 (lib/handlers/ack.js) fails the publish callback with an
 * ErrorWithReasonCode whenever an MQTT 5 PUBACK's reason code is above 0 and not 16
 * ("no matching subscribers", a success); every other callback error means the packet
 * never got its PUBACK (connection closed, client ended).
 */
function toPublishError(error: Error, topic: string): EdgemeterError {
  const reasonCode = error instanceof ErrorWithReasonCode ? error.code : (error as { code?: unknown }).code;
  if (typeof reasonCode === "number") {
    return new EdgemeterError("uplink.rejected", `the broker rejected the publish to ${topic}: ${error.message}`, {
      cause: error,
      retryable: false,
      context: { topic, reasonCode },
    });
  }
  return new EdgemeterError("uplink.disconnected", `publish to ${topic} not acknowledged: ${error.message}`, {
    cause: error,
    retryable: true,
    context: { topic },
  });
}

const PROBLEM_TEXT: Record<UplinkProblem, string> = {
  brokerUnreachable: "broker unreachable (connection refused: broker down or restarting)",
  networkDown: "network down (no route, DNS failure or connect timeout)",
  connectionLost: "connection lost (broker restart or network cut)",
  certificateExpired: "certificate expired: renew this gateway's certificate (edgemeter-provision)",
  certificateRejected: "certificate rejected: check the CA, the certificate and its revocation",
  notAuthorized: "the broker refused the session (CONNACK): check the broker's ACL/policy for this client id",
  other: "connection failed",
};

/** TLS alert and verification codes (OpenSSL via Node) that mean a certificate problem. */
const CERTIFICATE_CODES = new Set([
  "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED",
  "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN",
  "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA",
  "ERR_SSL_TLSV1_ALERT_ACCESS_DENIED",
  "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_REVOKED",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);
const EXPIRED_CODES = new Set(["ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED", "CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID"]);
const NETWORK_CODES = new Set(["ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ENETDOWN"]);

/** Turns the error that ended an attempt (if any) into a problem an installer can act on. */
export function classifyConnectionFailure(
  error: Error | undefined,
  wasConnected: boolean,
  ownCertificateExpired: boolean,
  certificateExpiresAt: string | null,
): { problem: UplinkProblem; detail: string } {
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = error?.message ?? (wasConnected ? "connection closed" : "connection closed before CONNACK");
  if (ownCertificateExpired) {
    return {
      problem: "certificateExpired",
      detail: `client certificate expired at ${certificateExpiresAt}: ${message}`,
    };
  }
  if (typeof code === "string") {
    if (EXPIRED_CODES.has(code)) return { problem: "certificateExpired", detail: `${code}: ${message}` };
    if (CERTIFICATE_CODES.has(code)) return { problem: "certificateRejected", detail: `${code}: ${message}` };
    if (code === "ECONNREFUSED") return { problem: "brokerUnreachable", detail: message };
    if (NETWORK_CODES.has(code)) return { problem: "networkDown", detail: `${code}: ${message}` };
    if (code === "ECONNRESET" || code === "EPIPE") {
      // A TLS server that refuses the client certificate may just reset the connection (TLS 1.3
      // checks it after the handshake completed on the client side).
      return { problem: wasConnected ? "connectionLost" : "certificateRejected", detail: `${code}: ${message}` };
    }
  }
  if (typeof code === "number") {
    // CONNACK reason codes (MQTT 5 §3.2.2.2): 134 bad user name or password, 135 not authorized, 138 banned.
    return { problem: "notAuthorized", detail: `CONNACK ${code}: ${message}` };
  }
  if (/connack timeout|connect timeout|timed? ?out/i.test(message)) return { problem: "networkDown", detail: message };
  if (/certificate|ssl|tls alert/i.test(message)) return { problem: "certificateRejected", detail: message };
  return { problem: wasConnected ? "connectionLost" : "other", detail: message };
}
