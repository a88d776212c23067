import type { IncomingMessage, IngestOutcome, MessageHandler } from "./ingestService.js";

/** What MessageGrouper needs of the ingest: IngestService.landTogether. */
export interface GroupLander {
  /** One promise per message, in order, each with the contract of MessageHandler.handle. */
  landTogether(messages: readonly IncomingMessage[]): Promise<IngestOutcome>[];
}

export interface MessageGrouperOptions {
  lander: GroupLander;
  /** Most messages landed together (bounds the statement size; 500-reading batches: 32 → 16,000 rows). */
  maxMessagesPerGroup?: number;
}

interface Waiting extends IncomingMessage {
  resolve: (outcome: IngestOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the ingest: while one group of messages is being landed, the messages that
 * arrive meanwhile (on the instance's other subscriber connections: mqtt.js gives each connection
 * one unacknowledged message at a time) wait, and land together in the next group, in one
 * transaction per gateway. No timer: a message arriving at an idle instance lands at once,
 * and groups grow only as fast as the database falls behind. Each message's promise settles
 * after its group committed, so the MQTT adapter still sends PUBACK only after the commit.
 */
export class MessageGrouper implements MessageHandler {
  readonly #lander: GroupLander;
  readonly #maxMessages: number;
  readonly #waiting: Waiting[] = [];
  #landing = false;

  constructor(options: MessageGrouperOptions) {
    this.#lander = options.lander;
    this.#maxMessages = options.maxMessagesPerGroup ?? 32;
  }

  handle(topic: string, payload: Buffer): Promise<IngestOutcome> {
    return new Promise<IngestOutcome>((resolve, reject) => {
      this.#waiting.push({ topic, payload, resolve, reject });
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#landing) return;
    this.#landing = true;
    try {
      while (this.#waiting.length > 0) {
        const group = this.#waiting.splice(0, this.#maxMessages);
        let outcomes: Promise<IngestOutcome>[];
        try {
          outcomes = this.#lander.landTogether(group);
        } catch (error) {
          for (const message of group) message.reject(error);
          continue;
        }
        await Promise.allSettled(
          outcomes.map((outcome, index) => {
            const message = group[index] as Waiting;
            return outcome.then(message.resolve, message.reject);
          }),
        );
      }
    } finally {
      this.#landing = false;
    }
  }
}
