import {
  describeError,
  isRetryable,
  MAX_PAYLOAD_BYTES,
  type ParsedTopic,
  parseOrThrow,
  parseTopic,
  TOPIC_PREFIX,
  TOPIC_SCHEMAS,
  type TopicKind,
} from "@edgemeter/shared";
import type { Logger } from "pino";
import type { Store } from "../store/store.js";
import { isPlainValidTelemetry } from "./telemetryCheck.js";

/** What became of one message. */
export type IngestOutcome = LandedOutcome | { kind: "rejected"; reason: string };

export interface LandedOutcome {
  kind: "landed";
  topicKind: TopicKind;
  gatewayId: string;
  /** Readings or events newly stored (0 for status). */
  inserted: number;
  /** Readings or events already stored. */
  duplicates: number;
}

/** Counters since start, for /metrics and the status API. */
export type IngestStats = {
  /** Messages landed (telemetry, events, status), replays included. */
  landed: number;
  /** Readings and events that were already stored (replayed or duplicated batches). */
  duplicates: number;
  /** Messages refused (bad topic, JSON, schema, gateway mismatch, permanent storage error). */
  rejected: number;
  /** Readings and events newly stored. */
  inserted: number;
  /** Messages that failed for a transient reason and were left for the broker to redeliver. */
  retryableFailures: number;
};

/** The message sink the MQTT adapter feeds: resolves once the message is committed or rejected. */
export interface MessageHandler {
  /**
   * @throws EdgemeterError with retryable=true only: the message must not be acknowledged, so
   *   the broker delivers it again. Bad input never throws; it resolves as "rejected".
   */
  handle(topic: string, payload: Buffer): Promise<IngestOutcome>;
}

export interface IngestServiceOptions {
  store: Store;
  logger: Logger;
  /** Injected for tests; the wall clock otherwise. */
  now?: () => Date;
}

/** Bound on remembered noisy sources, so a flood of odd topics cannot grow memory. */
const MAX_REMEMBERED_TOPICS = 1_000;

/**
 * Validates each MQTT message against the wire contract and lands it through the Store.
 * A message that can never land (bad JSON, schema, gateway mismatch) goes to
 * rejected_messages with its reason, and the service carries on with the next.
 */
export class IngestService implements MessageHandler {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #stats: IngestStats = { landed: 0, duplicates: 0, rejected: 0, inserted: 0, retryableFailures: 0 };
  /** Topics already warned about: a misbehaving gateway logs at warn once, then at debug. */
  readonly #warnedTopics = new Set<string>();
  #failing = false;

  constructor(options: IngestServiceOptions) {
    this.#store = options.store;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  stats(): IngestStats {
    return { ...this.#stats };
  }

  async handle(topic: string, payload: Buffer): Promise<IngestOutcome> {
    const receivedAt = this.#now();
    return this.#handleChecked(topic, payload, checkMessage(topic, payload), receivedAt);
  }

  /**
   * Checks a message as it arrives (MessageGrouper calls this before queueing it), so the
   * check runs while the group before it is in the database instead of after.
   */
  precheck(message: IncomingMessage): IncomingMessage {
    return message.checked === undefined
      ? { ...message, checked: checkMessage(message.topic, message.payload) }
      : message;
  }

  /**
   * Lands several messages, the telemetry of each gateway in ONE transaction (the readings of its
   * messages concatenated: the store's insert ignores a (meter, ts) already stored, so a message
   * that repeats another's readings still lands once). Events, status and bad input go one by one.
   * Returns one promise per message, in order, with the contract of handle(): a retryable failure
   * of a group rejects the promise of every message in it; a permanent one (a value the database
   * refuses) makes each of them land alone, so only the guilty message is rejected.
   * A grouped message's outcome carries the figures of its group's transaction.
   */
  landTogether(messages: readonly IncomingMessage[]): Promise<IngestOutcome>[] {
    const receivedAt = this.#now();
    const outcomes: Promise<IngestOutcome>[] = new Array(messages.length);
    const telemetry = new Map<string, { index: number; message: IncomingMessage; checked: CheckedMessage }[]>();
    messages.forEach((message, index) => {
      const checked = message.checked ?? checkMessage(message.topic, message.payload);
      if ("parsed" in checked && checked.parsed.kind === "telemetry") {
        const group = telemetry.get(checked.parsed.gatewayId) ?? [];
        group.push({ index, message, checked });
        telemetry.set(checked.parsed.gatewayId, group);
      } else {
        outcomes[index] = this.#handleChecked(message.topic, message.payload, checked, receivedAt);
      }
    });
    for (const [gatewayId, group] of telemetry) {
      if (group.length === 1) {
        const only = group[0] as (typeof group)[number];
        outcomes[only.index] = this.#handleChecked(only.message.topic, only.message.payload, only.checked, receivedAt);
        continue;
      }
      const landed = this.#landGroup(gatewayId, group, receivedAt);
      group.forEach((member) => {
        outcomes[member.index] = landed.then((result) =>
          result === "separately"
            ? this.#handleChecked(member.message.topic, member.message.payload, member.checked, receivedAt)
            : { kind: "landed", topicKind: "telemetry", gatewayId, ...result },
        );
      });
    }
    return outcomes;
  }

  /** One transaction for a gateway's telemetry messages; "separately" after a permanent failure. */
  async #landGroup(
    gatewayId: string,
    group: readonly { message: IncomingMessage; checked: CheckedMessage }[],
    receivedAt: Date,
  ): Promise<{ inserted: number; duplicates: number } | "separately"> {
    const bodies = group.map((member) => (member.checked as CheckedOk).body as ParsedBody<"telemetry">);
    const first = bodies[0] as ParsedBody<"telemetry">;
    const merged: ParsedBody<"telemetry"> = { ...first, readings: bodies.flatMap((body) => body.readings) };
    try {
      const result = await this.#store.landTelemetry(merged, receivedAt);
      this.#stats.landed += group.length;
      this.#stats.inserted += result.inserted;
      this.#stats.duplicates += result.duplicates;
      this.#recovered();
      return result;
    } catch (error) {
      if (isRetryable(error)) {
        this.#retryableFailure(`${gatewayId} (${group.length} messages)`, error, group.length);
        throw error;
      }
      this.#logger.debug({ gatewayId, err: describeError(error) }, "group refused: landing its messages one by one");
      return "separately";
    }
  }

  async #handleChecked(
    topic: string,
    payload: Buffer,
    checked: CheckedMessage,
    receivedAt: Date,
  ): Promise<IngestOutcome> {
    if ("reason" in checked) return this.#reject(topic, payload, checked.reason, receivedAt);
    try {
      const outcome = await this.#land(checked.parsed, checked.body, receivedAt);
      this.#stats.landed += 1;
      this.#stats.inserted += outcome.inserted;
      this.#stats.duplicates += outcome.duplicates;
      this.#recovered();
      return outcome;
    } catch (error) {
      if (isRetryable(error)) {
        this.#retryableFailure(topic, error, 1);
        throw error;
      }
      // A permanent storage failure (a value the database refuses) would fail the same way on
      // every redelivery and stall the queue behind it: record it like any bad input.
      return this.#reject(topic, payload, `storage: ${describeError(error)}`, receivedAt);
    }
  }

  #recovered(): void {
    if (this.#failing) {
      this.#failing = false;
      this.#logger.info("storage recovered: landing again");
    }
  }

  #retryableFailure(topic: string, error: unknown, messages: number): void {
    this.#stats.retryableFailures += messages;
    const level = this.#failing ? "debug" : "warn";
    this.#failing = true;
    this.#logger[level]({ topic, err: describeError(error) }, "storage unavailable: message left for redelivery");
  }

  async #land(parsed: ParsedTopic, body: unknown, receivedAt: Date): Promise<LandedOutcome> {
    const { gatewayId, kind } = parsed;
    switch (kind) {
      case "telemetry": {
        const result = await this.#store.landTelemetry(body as ParsedBody<"telemetry">, receivedAt);
        return { kind: "landed", topicKind: kind, gatewayId, ...result };
      }
      case "events": {
        const result = await this.#store.landEvents(body as ParsedBody<"events">, receivedAt);
        return { kind: "landed", topicKind: kind, gatewayId, ...result };
      }
      case "status":
        await this.#store.recordStatus(body as ParsedBody<"status">, receivedAt);
        return { kind: "landed", topicKind: kind, gatewayId, inserted: 0, duplicates: 0 };
    }
  }

  async #reject(topic: string, payload: Buffer, reason: string, receivedAt: Date): Promise<IngestOutcome> {
    this.#stats.rejected += 1;
    const firstTime = !this.#warnedTopics.has(topic);
    if (firstTime) {
      if (this.#warnedTopics.size >= MAX_REMEMBERED_TOPICS) this.#warnedTopics.clear();
      this.#warnedTopics.add(topic);
    }
    this.#logger[firstTime ? "warn" : "debug"]({ topic, reason: reason.slice(0, 500) }, "message rejected");
    try {
      await this.#store.recordRejected({ topic, reason, payload }, receivedAt);
    } catch (error) {
      // Not recorded yet: let the broker deliver it again rather than lose the evidence.
      if (isRetryable(error)) {
        this.#stats.rejected -= 1;
        this.#stats.retryableFailures += 1;
        throw error;
      }
      this.#logger.error({ topic, reason, err: describeError(error) }, "could not record a rejected message");
    }
    return { kind: "rejected", reason };
  }
}

type ParsedBody<K extends TopicKind> = ReturnType<(typeof TOPIC_SCHEMAS)[K]["parse"]>;
type CheckedOk = { parsed: ParsedTopic; body: ParsedBody<TopicKind> };
/** What checkMessage made of a message: its topic and valid body, or why it is refused. */
export type CheckedMessage = CheckedOk | { reason: string };

/** One MQTT message as received. */
export interface IncomingMessage {
  topic: string;
  payload: Buffer;
  /** checkMessage(topic, payload), when already done (IngestService.precheck). */
  checked?: CheckedMessage;
}

/**
 * The pure part: topic, size, JSON, schema and gateway checks, in that order. Reasons read
 * `topic: path: message` for schema failures (CONVENTIONS §6); the topic is stored beside them.
 */
export function checkMessage(topic: string, payload: Buffer): CheckedMessage {
  const parsed = parseTopic(topic);
  if (parsed === null) {
    return { reason: `not an edgemeter topic (expected ${TOPIC_PREFIX}/{gatewayId}/{telemetry|events|status})` };
  }
  if (payload.length > MAX_PAYLOAD_BYTES) {
    return { reason: `payload of ${payload.length} bytes exceeds the ${MAX_PAYLOAD_BYTES}-byte limit` };
  }
  let json: unknown;
  try {
    json = JSON.parse(payload.toString("utf8"));
  } catch (error) {
    return { reason: `invalid JSON: ${describeError(error)}` };
  }
  let body: ParsedBody<TopicKind>;
  if (parsed.kind === "telemetry" && isPlainValidTelemetry(json)) {
    // The hot path: what the schema would accept unchanged, checked without it (telemetryCheck.ts).
    body = json;
  } else {
    try {
      body = parseOrThrow(TOPIC_SCHEMAS[parsed.kind], json, topic, "ingest.schema");
    } catch (error) {
      return { reason: describeError(error) };
    }
  }
  if (body.gatewayId !== parsed.gatewayId) {
    return {
      reason: `gatewayId ${JSON.stringify(body.gatewayId)} differs from topic gateway ${JSON.stringify(parsed.gatewayId)}`,
    };
  }
  return { parsed, body };
}
