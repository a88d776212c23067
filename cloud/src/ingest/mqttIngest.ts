import { readFileSync } from "node:fs";
import {
  allGatewaysTopic,
  describeError,
  EdgemeterError,
  INGEST_SHARE_GROUP,
  sharedSubscription,
  type TopicKind,
} from "@edgemeter/shared";
import mqtt, { type IClientOptions, type IPublishPacket, type ISubscriptionMap, type MqttClient } from "mqtt";
import type { Logger } from "pino";
import type { MessageHandler } from "./ingestService.js";

export interface MqttIngestOptions {
  /** mqtts://host:port (mqtt:// only for tests against a plain broker). */
  url: string;
  /** 5: shared subscription, reason codes. 4 (MQTT 3.1.1): plain topics, for the embedded Aedes broker. */
  protocolVersion: 4 | 5;
  /** Stable across restarts and unique per instance: the broker keeps this session's queue. */
  clientId: string;
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
  /** MQTT 5 shared-subscription group; instances in one group share the messages. */
  shareGroup?: string;
  /** How long the broker keeps the session (and queues messages) while this instance is down. MQTT 5 only. */
  sessionExpirySec?: number;
  /**
   * Subscriber connections of this instance in the shared group (MQTT 5 only; default 1): mqtt.js
   * lands one message per connection at a time, so this is how many messages are in flight.
   */
  connections?: number;
  handler: MessageHandler;
  logger: Logger;
  /** First reconnect delay; doubled after each storage failure, up to maxReconnectDelayMs. */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** How long start() waits for the first connection. */
  connectTimeoutMs?: number;
}

const KINDS: readonly TopicKind[] = ["telemetry", "events", "status"];

/** PUBACK reason 0x80 "unspecified error": the message was refused (and recorded as rejected). */
const PUBACK_REFUSED = 0x80;

/**
 * Feeds MQTT messages to the ingest and acknowledges each only after it is committed (or
 * recorded as rejected), so the broker still holds whatever this process had not stored when
 * it crashed. mqtt.js sends the PUBACK when we call back: under MQTT 5 through
 * `customHandleAcks` (which also lets us send a reason code), under 3.1.1 through
 * `handleMessage` (mqtt.js ignores customHandleAcks there).
 *
 * mqtt.js delivers a connection's messages strictly one at a time: its packet pump
 * (`work()` in mqtt/build/lib/client.js) takes the next packet only once the handler of the
 * previous PUBLISH called back, which for QoS 1 is after the PUBACK went out (handlers/publish.js).
 * So with acks after commit, one connection lands one message per database round trip, and no
 * receive-maximum setting changes that. To have several messages in flight, an instance opens
 * `connections` subscriber connections in the same MQTT 5 shared-subscription group; the broker
 * spreads messages over them like over separate instances, each landed in its own transaction
 * (the store orders rows so concurrent landings cannot deadlock) and acknowledged after its commit.
 *
 * A retryable storage failure is never acknowledged: the connection is dropped, and the broker
 * redelivers the message on the next session (clean: false), after a growing delay.
 */
export class MqttIngest {
  readonly #options: MqttIngestOptions;
  readonly #logger: Logger;
  #subscribers: Subscriber[] = [];
  #stopping = false;
  #failureStreak = 0;

  constructor(options: MqttIngestOptions) {
    this.#options = options;
    this.#logger = options.logger;
  }

  /** The subscriptions this instance makes (on each of its connections). */
  get topics(): string[] {
    return KINDS.map((kind) =>
      this.#options.protocolVersion === 5
        ? sharedSubscription(this.#options.shareGroup ?? INGEST_SHARE_GROUP, allGatewaysTopic(kind))
        : allGatewaysTopic(kind),
    );
  }

  /**
   * The client ids of this instance's connections: the configured one, then `<clientId>-c2`...
   * (each keeps its own persistent session on the broker).
   */
  get clientIds(): string[] {
    const count = this.#connectionCount();
    const base = this.#options.clientId;
    return Array.from({ length: count }, (_, index) => (index === 0 ? base : `${base.slice(0, 120)}-c${index + 1}`));
  }

  /**
   * Connects and subscribes every connection; resolves once the broker granted the subscriptions.
   * @throws EdgemeterError ingest.connect (retryable) when the broker cannot be reached in time,
   *   ingest.subscribe when it refuses a subscription (ACL), config.invalid when a TLS file is
   *   unreadable or several connections are asked for under MQTT 3.1.1.
   */
  async start(): Promise<void> {
    const tls = readTls(this.#options);
    const subscribers = this.clientIds.map(
      (clientId) =>
        new Subscriber({
          options: this.#options,
          clientId,
          tls,
          topics: this.topics,
          logger: this.#logger,
          isStopping: () => this.#stopping,
          onLanded: () => {
            this.#failureStreak = 0;
            this.#setReconnectDelay();
          },
          onRetryableFailure: () => {
            this.#failureStreak += 1;
            this.#setReconnectDelay();
            return this.#failureStreak;
          },
        }),
    );
    this.#subscribers = subscribers;
    const started = await Promise.allSettled(subscribers.map((subscriber) => subscriber.start()));
    const failure = started.find((result) => result.status === "rejected");
    if (failure !== undefined) {
      await Promise.all(subscribers.map((subscriber) => subscriber.stop(true)));
      this.#subscribers = [];
      throw failure.reason;
    }
  }

  /** Finishes the messages in hand (acknowledging them), then disconnects; the sessions stay with the broker. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#subscribers.map((subscriber) => subscriber.stop(false)));
    this.#subscribers = [];
  }

  #connectionCount(): number {
    const count = this.#options.connections ?? 1;
    if (!Number.isInteger(count) || count < 1) {
      throw new EdgemeterError("config.invalid", `mqtt.connections: must be a positive integer, got ${count}`);
    }
    // Without a shared subscription every connection would receive every message.
    if (count > 1 && this.#options.protocolVersion !== 5) {
      throw new EdgemeterError(
        "config.invalid",
        "mqtt.connections: several connections need MQTT 5 (protocolVersion: 5) for the shared subscription",
      );
    }
    return count;
  }

  #setReconnectDelay(): void {
    const base = this.#options.reconnectDelayMs ?? 1_000;
    const max = this.#options.maxReconnectDelayMs ?? 30_000;
    const delayMs = Math.min(max, base * 2 ** Math.min(this.#failureStreak, 16));
    for (const subscriber of this.#subscribers) subscriber.setReconnectDelay(delayMs);
  }
}

interface SubscriberOptions {
  options: MqttIngestOptions;
  clientId: string;
  tls: Pick<IClientOptions, "ca" | "cert" | "key">;
  topics: string[];
  logger: Logger;
  isStopping: () => boolean;
  onLanded: () => void;
  /** Returns the failure streak across the instance, for log levels. */
  onRetryableFailure: () => number;
}

/** One broker connection with its persistent session; lands one message at a time (see MqttIngest). */
class Subscriber {
  readonly #s: SubscriberOptions;
  readonly #logger: Logger;
  #client: MqttClient | null = null;
  /** Bumped on every CONNACK: an ack computed for an older connection must not be sent on a newer one. */
  #connection = 0;
  #inFlight: Promise<unknown> = Promise.resolve();
  /** True from the first connection problem until the next CONNACK. */
  #troubled = false;

  constructor(options: SubscriberOptions) {
    this.#s = options;
    this.#logger = options.logger;
  }

  async start(): Promise<void> {
    const options = this.#s.options;
    const clientId = this.#s.clientId;
    const clientOptions: IClientOptions = {
      protocolVersion: options.protocolVersion,
      clientId,
      clean: false,
      reconnectPeriod: options.reconnectDelayMs ?? 1_000,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      // Re-subscribing after every reconnect is harmless and covers a broker that lost the session.
      resubscribe: true,
      ...this.#s.tls,
      ...(options.protocolVersion === 5
        ? {
            properties: { sessionExpiryInterval: options.sessionExpirySec ?? 86_400 },
            customHandleAcks: (topic: string, message: Buffer, _packet: IPublishPacket, done: AckCallback) =>
              // done(code): mqtt.js reads a number in the error position as the reason code.
              this.#onMessage(topic, message, (code) => done(code)),
          }
        : {}),
    };
    const client = mqtt.connect(options.url, { ...clientOptions, manualConnect: true });
    this.#client = client;
    const defaultHandleMessage = client.handleMessage.bind(client);
    client.handleMessage = (packet, callback) => {
      // MQTT 5 QoS 1/2 went through customHandleAcks already; everything else is processed here.
      if (options.protocolVersion === 5 && packet.qos > 0) {
        defaultHandleMessage(packet, callback);
        return;
      }
      this.#onMessage(String(packet.topic), toBuffer(packet.payload), () => callback());
    };
    client.on("connect", (connack) => {
      this.#connection += 1;
      this.#troubled = false;
      this.#logger.info({ url: options.url, clientId }, "connected to broker");
      // Mosquitto 2 restores a persistent session after a restart WITHOUT its shared
      // subscriptions (sessionPresent true, `$share/...` gone: found by the chaos test of
      // issue 4), and mqtt.js resubscribes only when sessionPresent is false, and skips a
      // subscribe() to topics it believes subscribed unless `resubscribe: true` is in the map.
      // Subscribing again is harmless (MQTT 5 §3.8.4: it replaces the existing subscription).
      if (this.#connection > 1 && connack.sessionPresent) {
        const again = Object.fromEntries(this.#s.topics.map((topic) => [topic, { qos: 1 as const }]));
        client.subscribe({ ...again, resubscribe: true } as ISubscriptionMap, (error) => {
          if (error) this.#logTrouble({ err: describeError(error), clientId }, "re-subscribe after reconnect failed");
        });
      }
    });
    client.on("offline", () => {
      if (!this.#s.isStopping())
        this.#logTrouble({ url: options.url, clientId }, "broker connection lost: reconnecting");
    });
    client.on("error", (error) => {
      // mqtt.js reports each failed reconnect: warn once per outage, then debug (CONVENTIONS §8).
      this.#logTrouble({ err: describeError(error), clientId }, "mqtt error");
    });

    const connected = new Promise<void>((resolve, reject) => {
      let lastError = "";
      const fail = (message: string) => {
        clearTimeout(timer);
        client.off("error", onError);
        reject(new EdgemeterError("ingest.connect", message, { retryable: true, context: { url: options.url } }));
      };
      const onError = (error: Error & { code?: unknown }) => {
        lastError = describeError(error);
        // A numeric code is the broker's CONNACK refusal (bad certificate identity, clientId): no point waiting.
        if (typeof error.code === "number") fail(`${options.url} refused the connection: ${lastError}`);
      };
      const timer = setTimeout(() => {
        fail(
          `no connection to ${options.url} within ${clientOptions.connectTimeout} ms${lastError === "" ? "" : ` (${lastError})`}`,
        );
      }, clientOptions.connectTimeout);
      client.on("error", onError);
      client.once("connect", () => {
        clearTimeout(timer);
        client.off("error", onError);
        resolve();
      });
    });
    client.connect();
    try {
      await connected;
      const granted = await client.subscribeAsync(this.#s.topics, { qos: 1 });
      const refused = granted.filter((grant) => grant.qos >= 0x80);
      if (refused.length > 0) {
        throw new EdgemeterError(
          "ingest.subscribe",
          `broker refused ${refused.map((grant) => `${grant.topic} (reason ${grant.qos})`).join(", ")}`,
        );
      }
      this.#logger.info({ topics: this.#s.topics, clientId }, "subscribed");
    } catch (error) {
      await client.endAsync(true);
      this.#client = null;
      throw error;
    }
  }

  /** force: drop the connection without finishing the message in hand (start() failed elsewhere). */
  async stop(force: boolean): Promise<void> {
    const client = this.#client;
    if (client === null) return;
    if (!force) await this.#inFlight;
    await client.endAsync(force);
    this.#client = null;
  }

  setReconnectDelay(delayMs: number): void {
    if (this.#client !== null) this.#client.options.reconnectPeriod = delayMs;
  }

  #onMessage(topic: string, payload: Buffer, ack: (code: number) => void): void {
    if (this.#s.isStopping()) return; // Not acknowledged: the broker keeps it for the next session.
    const connection = this.#connection;
    const work = this.#s.options.handler.handle(topic, payload).then(
      (outcome) => {
        this.#s.onLanded();
        if (connection !== this.#connection) return; // The broker redelivers it on the new connection.
        ack(outcome.kind === "landed" ? 0 : PUBACK_REFUSED);
      },
      (error: unknown) => {
        // Only a retryable failure reaches here (IngestService records bad input itself).
        const streak = this.#s.onRetryableFailure();
        this.#logger[streak === 1 ? "warn" : "debug"](
          {
            topic,
            clientId: this.#s.clientId,
            err: describeError(error),
            reconnectDelayMs: this.#client?.options.reconnectPeriod,
          },
          "not acknowledged: dropping the connection so the broker redelivers",
        );
        // Destroying the socket (not a DISCONNECT) makes mqtt.js reconnect after reconnectPeriod.
        this.#client?.stream.destroy();
      },
    );
    this.#inFlight = work;
  }

  #logTrouble(fields: Record<string, unknown>, message: string): void {
    this.#logger[this.#troubled ? "debug" : "warn"](fields, message);
    this.#troubled = true;
  }
}

type AckCallback = (error: Error | number, code?: number) => void;

function toBuffer(payload: Buffer | string): Buffer {
  return typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
}

function readTls(options: MqttIngestOptions): Pick<IClientOptions, "ca" | "cert" | "key"> {
  const read = (what: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new EdgemeterError("config.invalid", `mqtt.${what}: ${file}: ${describeError(error)}`, { cause: error });
    }
  };
  const tls: Pick<IClientOptions, "ca" | "cert" | "key"> = {};
  const ca = read("caFile", options.caFile);
  const cert = read("certFile", options.certFile);
  const key = read("keyFile", options.keyFile);
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  return tls;
}
