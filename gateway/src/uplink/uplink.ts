/**
 * - `connecting`: (re)connecting to the broker; publishes are refused.
 * - `connected`: the broker accepted the session; publishes go out.
 * - `disconnected`: the connection dropped; the adapter reconnects by itself.
 * - `closed`: `close()` was called; terminal.
 */
export type UplinkState = "connecting" | "connected" | "disconnected" | "closed";

export interface PublishOptions {
  /** Only QoS 1: telemetry must be acknowledged before the outbox may forget it. */
  qos: 1;
  retain?: boolean;
}

/**
 * Why the uplink is not connected, in words an installer can act on:
 * - `brokerUnreachable`: connection refused (broker down or restarting);
 * - `networkDown`: no route, DNS failure or connect timeout (cable, modem, firewall);
 * - `connectionLost`: an established connection dropped (broker restart, network cut);
 * - `certificateExpired`: our client certificate has expired (renew it), or the broker says so;
 * - `certificateRejected`: the broker refused our certificate, or we refused the broker's;
 * - `notAuthorized`: TLS worked but the broker refused the MQTT session (CONNACK reason).
 */
export type UplinkProblem =
  | "brokerUnreachable"
  | "networkDown"
  | "connectionLost"
  | "certificateExpired"
  | "certificateRejected"
  | "notAuthorized"
  | "other";

export interface UplinkStatus {
  state: UplinkState;
  /** null while connected. */
  problem: UplinkProblem | null;
  /** The last error message, for the status page (never a secret). */
  detail: string | null;
  /** Failed attempts since the last stable connection. */
  attempt: number;
  /** When the next connection attempt is due (ISO), null when none is scheduled. */
  nextAttemptAt: string | null;
  /** notAfter of our client certificate (ISO), null without TLS. */
  certificateExpiresAt: string | null;
}

/** The gateway's link to the broker (DESIGN "Wire contract"). */
export interface Uplink {
  readonly state: UplinkState;
  /** Why it is not connected and when it tries again (adapters that know). */
  status?(): UplinkStatus;
  /**
   * Starts connecting and keeps reconnecting until `close()`. Resolves once the attempt has
   * started, not when connected: the gateway polls and buffers while the broker is away.
   * @throws EdgemeterError `uplink.config` when the TLS files cannot be read.
   */
  connect(): Promise<void>;
  /**
   * Publishes `payload` (bytes as sent) to `topic`. Resolves only when the broker
   * acknowledged it (PUBACK) with a reason code below 0x80. Once it resolved, the adapter holds
   * no reference to `payload`: the caller may reuse the buffer (the forwarder's payload pool;
   * mqtt.js drops the packet from its outgoing store before calling back, aws-crt copies it at
   * submission). Not after a rejection: a publish that failed may still be resent.
   * @throws EdgemeterError `uplink.rejected` (permanent) when the broker answered with a reason
   *   code >= 0x80, e.g. 135 "not authorized" when its ACL denies the topic; context.reasonCode.
   * @throws EdgemeterError `uplink.noSubscribers` (retryable) when a non-retained publish got
   *   PUBACK 16 "no matching subscribers": the broker accepted it and delivered it to nobody.
   * @throws EdgemeterError `uplink.disconnected` (retryable) when not connected, or the
   *   connection closed before the acknowledgement and the adapter gave up on it.
   */
  publish(topic: string, payload: Uint8Array, options: PublishOptions): Promise<void>;
  /** Calls `listener` on every state change; returns an unsubscribe function. */
  on(event: "state", listener: (state: UplinkState) => void): () => void;
  /**
   * Publishes the offline status if connected, waits up to `deadlineMs` for in-flight
   * publishes, then disconnects. Pending publishes then reject with `uplink.disconnected`.
   */
  close(deadlineMs?: number): Promise<void>;
}
