import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { EdgemeterError } from "@edgemeter/shared/core";
import type { mqtt5 } from "aws-iot-device-sdk-v2";
import type { Logger } from "pino";
import { RepeatedFailure } from "../logging/repeatedFailure.js";
import { type Clock, systemClock } from "../time/clock.js";
import { type StatusReporter, type UplinkStatusOptions, uplinkStatusReporter } from "./statusReport.js";
import type { PublishOptions, Uplink, UplinkProblem, UplinkState, UplinkStatus } from "./uplink.js";

/**
 * aws-crt ships native binaries for linux x64/arm64 (glibc and musl), macOS and Windows only:
 * there is NO 32-bit ARM build (dist/bin of aws-crt 1.33). On a Raspberry Pi, AWS IoT needs a
 * 64-bit OS (Raspberry Pi OS 64-bit, Pi 3/4/5/Zero 2); on 32-bit, use the mqtt.js uplink.
 */
export interface AwsIotUplinkOptions extends UplinkStatusOptions {
  gatewayId: string;
  /** The AWS IoT data endpoint (`xxxxxxxx-ats.iot.<region>.amazonaws.com`) or any MQTT 5 broker's host. */
  host: string;
  port: number;
  clientId: string;
  keepaliveS: number;
  /** Reconnect delays: the SDK's own full-jitter backoff between these bounds. */
  reconnectPeriodMs: number;
  reconnectCapMs: number;
  /** A connection up this long resets the backoff (the SDK's minConnectedTimeToResetReconnectDelayMs). */
  stablePeriodMs: number;
  /** PEM files: AWS IoT's device certificate and key, and the CA that signed the endpoint (Amazon Root CA 1). */
  tls: { caFile: string; certFile: string; keyFile: string };
  logger: Logger;
  clock?: Clock;
}

/**
 * The Uplink over the AWS IoT Device SDK v2's MQTT 5 client (aws-crt, mTLS). Same contract as
 * MqttUplink: resolves a publish on a PUBACK below 0x80, rejects with `uplink.rejected` at or
 * above (AWS IoT answers 135 when its policy denies the topic), `uplink.disconnected` otherwise.
 */
export class AwsIotUplink implements Uplink {
  private client: mqtt5.Mqtt5Client | undefined;
  private currentState: UplinkState = "disconnected";
  private readonly listeners = new Set<(state: UplinkState) => void>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly logger: Logger;
  private readonly clock: Clock;
  private readonly statusReporter: StatusReporter;
  private readonly connectionFailure: RepeatedFailure;
  private problem: UplinkProblem | null = null;
  private detail: string | null = null;
  private attempt = 0;
  private certificateExpiresAt: string | null = null;
  /**
   * The SDK, loaded on connect(): aws-crt is a ~30 MB native module, and a gateway on the
   * mqtt.js uplink must not pay for it in RSS (the footprint budget is 80 MB).
   */
  private sdk: typeof import("aws-iot-device-sdk-v2") | undefined;

  constructor(private readonly options: AwsIotUplinkOptions) {
    this.logger = options.logger;
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
    this.connectionFailure = new RepeatedFailure(this.logger, "the AWS IoT connection");
  }

  get state(): UplinkState {
    return this.currentState;
  }

  status(): UplinkStatus {
    const connected = this.currentState === "connected";
    return {
      state: this.currentState,
      problem: connected ? null : this.problem,
      detail: connected ? null : this.detail,
      attempt: this.attempt,
      // The SDK schedules its own reconnects and does not say when.
      nextAttemptAt: null,
      certificateExpiresAt: this.certificateExpiresAt,
    };
  }

  async connect(): Promise<void> {
    if (this.client !== undefined) return;
    const { tls } = this.options;
    let cert: string;
    let key: string;
    let ca: string;
    try {
      cert = readFileSync(tls.certFile, "utf8");
      key = readFileSync(tls.keyFile, "utf8");
      ca = readFileSync(tls.caFile, "utf8");
      this.certificateExpiresAt = new Date(new X509Certificate(cert).validTo).toISOString();
    } catch (error) {
      throw new EdgemeterError("uplink.config", `cannot read the uplink TLS files: ${String(error)}`, { cause: error });
    }
    const sdk = await import("aws-iot-device-sdk-v2");
    this.sdk = sdk;
    const { iot, mqtt5 } = sdk;
    const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(
      this.options.host,
      cert,
      key,
    )
      .withCertificateAuthority(ca)
      .withPort(this.options.port)
      .withConnectProperties({
        clientId: this.options.clientId,
        keepAliveIntervalSeconds: this.options.keepaliveS,
        // Nothing to keep: we subscribe to nothing, and the outbox is the real store (see MqttUplink).
        sessionExpiryIntervalSeconds: 0,
        will: {
          topicName: this.statusReporter.topic,
          payload: this.statusReporter.willPayload(),
          qos: mqtt5.QoS.AtLeastOnce,
          retain: true,
        },
      })
      .withSessionBehavior(mqtt5.ClientSessionBehavior.Clean)
      // Full jitter, capped, reset after a stable period: the SDK implements exactly the policy of
      // issue 4 (AWS Architecture Blog, "Exponential Backoff And Jitter").
      .withRetryJitterMode(mqtt5.RetryJitterType.Full)
      .withMinReconnectDelayMs(this.options.reconnectPeriodMs)
      .withMaxReconnectDelayMs(this.options.reconnectCapMs)
      .withMinConnectedTimeToResetReconnectDelayMs(this.options.stablePeriodMs)
      // Never queue while offline: the caller keeps the data (the outbox) and retries.
      .withOfflineQueueBehavior(mqtt5.ClientOperationQueueBehavior.FailAllOnDisconnect);
    const client = new mqtt5.Mqtt5Client(builder.build());
    this.client = client;
    client.on("attemptingConnect", () => this.setState("connecting"));
    client.on("connectionSuccess", () => {
      this.connectionFailure.recover({ host: this.options.host });
      this.logger.info(
        { host: this.options.host, port: this.options.port },
        "connected to broker (aws-iot-device-sdk-v2)",
      );
      this.problem = null;
      this.detail = null;
      this.attempt = 0;
      this.setState("connected");
      this.statusReporter.connected();
    });
    client.on("connectionFailure", (event) => {
      this.attempt++;
      const reasonCode = event.connack?.reasonCode;
      const errorName = (event.error as { error_name?: string }).error_name ?? "";
      const problem = classifyCrtFailure(errorName, reasonCode, this.ownCertificateExpired());
      this.problem = problem;
      this.detail = `${errorName || String(event.error)}${reasonCode === undefined ? "" : ` (CONNACK ${reasonCode})`}`;
      this.connectionFailure.fail(
        { host: this.options.host, problem, err: this.detail, attempt: this.attempt },
        `broker connection: ${problem}`,
      );
      this.statusReporter.disconnected();
      if (this.currentState !== "closed") this.setState("disconnected");
    });
    client.on("disconnection", (event) => {
      const errorName = (event.error as { error_name?: string }).error_name ?? "";
      this.problem = "connectionLost";
      this.detail = errorName || String(event.error);
      this.statusReporter.disconnected();
      if (this.currentState !== "closed") this.setState("disconnected");
    });
    client.on("error", (error) => this.logger.warn({ err: String(error) }, "aws-iot client error"));
    this.setState("connecting");
    client.start();
  }

  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void> {
    const client = this.client;
    const sdk = this.sdk;
    if (client === undefined || sdk === undefined || this.currentState !== "connected") {
      return Promise.reject(
        new EdgemeterError("uplink.disconnected", `not connected to the broker (${this.currentState})`, {
          retryable: true,
          context: { topic },
        }),
      );
    }
    const done = client
      .publish({
        topicName: topic,
        payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        qos: sdk.mqtt5.QoS.AtLeastOnce,
        retain: options.retain ?? false,
      })
      .then(
        (result) => {
          // MQTT 5 §3.4.2.1: 0x00 success, 0x10 no matching subscribers (also a success); >= 0x80 failure.
          const reasonCode = (result as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
          if (reasonCode === 16 && options.retain !== true) {
            // "No matching subscribers": accepted and delivered to nobody (see MqttUplink).
            throw new EdgemeterError("uplink.noSubscribers", `nobody is subscribed to ${topic} (PUBACK 16)`, {
              retryable: true,
              context: { topic, reasonCode },
            });
          }
          if (reasonCode >= 0x80) {
            throw new EdgemeterError(
              "uplink.rejected",
              `the broker rejected the publish to ${topic}: reason ${reasonCode}`,
              {
                retryable: false,
                context: { topic, reasonCode },
              },
            );
          }
        },
        (error: unknown) => {
          throw new EdgemeterError("uplink.disconnected", `publish to ${topic} not acknowledged: ${String(error)}`, {
            cause: error,
            retryable: true,
            context: { topic },
          });
        },
      );
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
    this.statusReporter.disconnected();
    const client = this.client;
    if (client === undefined || this.currentState === "closed") {
      this.setState("closed");
      return;
    }
    await this.statusReporter.beforeDisconnect(this.currentState === "connected", this.inFlight, deadlineMs);
    this.setState("closed");
    const stopped = new Promise<void>((resolve) => {
      client.on("stopped", () => resolve());
    });
    client.stop({ reasonCode: this.sdk?.mqtt5.DisconnectReasonCode.NormalDisconnection ?? 0 });
    await Promise.race([stopped, new Promise<void>((resolve) => setTimeout(resolve, 2_000).unref())]);
    // Frees the native resources (the SDK requires it; a leaked client keeps the process alive).
    client.close();
    this.client = undefined;
  }

  private ownCertificateExpired(): boolean {
    return this.certificateExpiresAt !== null && Date.parse(this.certificateExpiresAt) <= this.clock.nowMs();
  }

  private setState(state: UplinkState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    for (const listener of this.listeners) listener(state);
  }
}

/** aws-c-io / aws-c-mqtt error names (aws-crt) to the problems the status page shows. */
export function classifyCrtFailure(
  errorName: string,
  connackReasonCode: number | undefined,
  ownCertificateExpired: boolean,
): UplinkProblem {
  if (ownCertificateExpired) return "certificateExpired";
  if (connackReasonCode !== undefined && connackReasonCode >= 0x80) return "notAuthorized";
  if (errorName === "AWS_IO_SOCKET_CONNECTION_REFUSED") return "brokerUnreachable";
  if (/TIMEOUT|NO_ROUTE|DNS|NETWORK_DOWN|UNREACHABLE/.test(errorName)) return "networkDown";
  if (/EXPIRED/.test(errorName)) return "certificateExpired";
  if (/TLS|CERT|SSL|PKI/.test(errorName)) return "certificateRejected";
  if (/CLOSED|RESET/.test(errorName)) return "connectionLost";
  return "other";
}
