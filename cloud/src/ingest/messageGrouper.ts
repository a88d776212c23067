import type { IncomingMessage, IngestOutcome, MessageHandler } from "./ingestService.js";

/** What MessageGrouper needs of the ingest: IngestService.landTogether. */
export interface GroupLander {
  /**
   * Optional work on one message as it arrives (IngestService: the checks), returning the
   * message to queue. Runs while the previous group is in the database, so it costs no
   * landing time. Should not throw (if it does, the message is queued as it came).
   */
  precheck?(message: IncomingMessage): IncomingMessage;
  /** One promise per message, in order, each with the contract of MessageHandler.handle. */
  landTogether(messages: readonly IncomingMessage[]): Promise<IngestOutcome>[];
}

export interface MessageGrouperOptions {
  lander: GroupLander;
  /** Most messages landed together (bounds the statement size; 500-reading batches: 32 → 16,000 rows). */
  maxMessagesPerGroup?: number;
  /**
   * After a group committed, how long the next group may wait for the messages that follow the
   * ones just acknowledged (default 5 ms; 0: never wait). See MessageGrouper.
   */
  followerWaitMs?: number;
}

interface Waiting extends IncomingMessage {
  resolve: (outcome: IngestOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the ingest: while one group of messages is being landed, the messages that
 * arrive meanwhile (on the instance's other subscriber connections: mqtt.js gives each connection
 * one unacknowledged message at a time) wait, and land together in the next group, in one
 * transaction per gateway. A message arriving at an idle instance lands at once. Each message's
 * promise settles after its group committed, so the MQTT adapter still sends PUBACK only after
 * the commit.
 *
 * Under load, the PUBACKs of a group free its connections, and the broker sends each its next
 * message a moment later. Landing at once what waits then would make a small group (often one
 * message) and leave those followers for a third: every transaction costs about as much for the
 * meters it touches as for its rows, so the next group waits until as many messages arrived as
 * the last group acknowledged, or `followerWaitMs` passed, whichever comes first (the
 * commit_delay idea of PostgreSQL, bounded by what is known to be on its way). With a backlog,
 * groups then take every connection's message; when the broker has nothing more, the wait ends
 * after followerWaitMs and what is there lands.
 */
export class MessageGrouper implements MessageHandler {
  readonly #lander: GroupLander;
  readonly #maxMessages: number;
  readonly #followerWaitMs: number;
  readonly #waiting: Waiting[] = [];
  #landing = false;
  /** While waiting for followers: how many more to wait for, and how to stop waiting. */
  #followers: { missing: number; done: () => void } | null = null;

  constructor(options: MessageGrouperOptions) {
    this.#lander = options.lander;
    this.#maxMessages = options.maxMessagesPerGroup ?? 32;
    this.#followerWaitMs = options.followerWaitMs ?? 5;
  }

  handle(topic: string, payload: Buffer): Promise<IngestOutcome> {
    let message: IncomingMessage = { topic, payload };
    try {
      message = this.#lander.precheck?.(message) ?? message;
    } catch {
      // A bug in the lander's check must not escape into the MQTT client: landTogether checks again.
    }
    return new Promise<IngestOutcome>((resolve, reject) => {
      this.#waiting.push({ ...message, resolve, reject });
      const followers = this.#followers;
      if (followers !== null) {
        followers.missing -= 1;
        if (followers.missing <= 0 || this.#waiting.length >= this.#maxMessages) followers.done();
      }
      void this.#drain();
    });
  }

  /** Resolves when `count` more messages arrived, the group is full, or followerWaitMs passed. */
  #awaitFollowers(count: number): Promise<void> {
    if (this.#followerWaitMs <= 0 || count <= 0 || this.#waiting.length >= this.#maxMessages) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#followers = null;
        resolve();
      };
      const timer = setTimeout(done, this.#followerWaitMs);
      this.#followers = { missing: count, done };
    });
  }

  async #drain(): Promise<void> {
    if (this.#landing) return;
    this.#landing = true;
    try {
      let acknowledged = 0;
      while (this.#waiting.length > 0 || acknowledged > 0) {
        if (acknowledged > 0) await this.#awaitFollowers(acknowledged);
        if (this.#waiting.length === 0) break;
        const group = this.#waiting.splice(0, this.#maxMessages);
        acknowledged = group.length;
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
