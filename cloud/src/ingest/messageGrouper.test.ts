import { topicFor } from "@edgemeter/shared";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import { type IncomingMessage, IngestService } from "./ingestService.js";
import { MessageGrouper } from "./messageGrouper.js";

const logger = pino({ level: "silent" });
const PAGE = { limit: 100, offset: 0 };

function telemetry(gatewayId: string, seq: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      v: 1,
      gatewayId,
      batchId: `b${seq}`,
      sentAt: "2026-11-22T10:00:01.000Z",
      readings: [
        {
          meterId: `${gatewayId}-m`,
          seq,
          ts: new Date(Date.UTC(2026, 10, 22, 10, seq)).toISOString(),
          clock: "synced",
          values: { importEnergyKwh: 10 + seq },
        },
      ],
    }),
  );
}

describe("MessageGrouper", () => {
  let store: PostgresStore;
  beforeAll(async () => {
    store = new PostgresStore({ sql: await PgliteSqlClient.open(), logger });
    await store.migrate();
  });
  afterAll(async () => {
    await store.close();
  });

  it("lands what arrives while a group is landing as the next group, and settles each message after its commit", async () => {
    const ingest = new IngestService({ store, logger });
    const groups: number[] = [];
    const grouper = new MessageGrouper({
      lander: {
        landTogether(messages: readonly IncomingMessage[]) {
          groups.push(messages.length);
          return ingest.landTogether(messages);
        },
      },
      maxMessagesPerGroup: 4,
    });
    const topic = topicFor("telemetry", "gw-grp");
    // The first starts landing at once; the next seven wait for it and land in groups of at most four.
    const outcomes = await Promise.all(
      [1, 2, 3, 4, 5, 6, 7, 8].map((seq) => grouper.handle(topic, telemetry("gw-grp", seq))),
    );
    expect(groups).toEqual([1, 4, 3]);
    expect(outcomes.every((o) => o.kind === "landed")).toBe(true);
    const rows = await store.readings("gw-grp-m", new Date(0), new Date("2100-01-01Z"), PAGE);
    expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  /**
   * Four subscriber connections as mqtt.js drives them: each hands over its next message only
   * after the previous one settled (its PUBACK), a moment later. Returns the group sizes.
   */
  async function underLoad(followerWaitMs: number): Promise<number[]> {
    const groups: number[] = [];
    const grouper = new MessageGrouper({
      lander: {
        landTogether(messages: readonly IncomingMessage[]) {
          groups.push(messages.length);
          return messages.map(async () => {
            await new Promise((resolve) => setTimeout(resolve, 5));
            return { kind: "landed", topicKind: "telemetry", gatewayId: "gw-f", inserted: 1, duplicates: 0 } as const;
          });
        },
      },
      followerWaitMs,
    });
    const topic = topicFor("telemetry", "gw-f");
    let seq = 0;
    const connection = async (messages: number) => {
      for (let i = 0; i < messages; i++) {
        await grouper.handle(topic, telemetry("gw-f", ++seq));
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };
    await Promise.all([connection(6), connection(5), connection(5), connection(5)]);
    return groups;
  }

  it("under load, waits for the messages that follow the acknowledged ones instead of landing one alone", async () => {
    // The first lands alone at once; after it, every group gathers all four connections' messages.
    expect(await underLoad(5_000)).toEqual([1, 4, 4, 4, 4, 4]);
    // Without the wait, whatever waits lands at once: groups of one keep coming back.
    expect((await underLoad(0)).slice(1)).toContain(1);
  });

  it("lands a message at once when nothing is landing, and one that comes after the wait gave up", async () => {
    const groups: number[] = [];
    const grouper = new MessageGrouper({
      lander: {
        landTogether(messages: readonly IncomingMessage[]) {
          groups.push(messages.length);
          return messages.map(async () => ({
            kind: "landed" as const,
            topicKind: "telemetry" as const,
            gatewayId: "gw-i",
            inserted: 1,
            duplicates: 0,
          }));
        },
      },
      followerWaitMs: 20,
    });
    const topic = topicFor("telemetry", "gw-i");
    const first = grouper.handle(topic, telemetry("gw-i", 1));
    expect(groups).toEqual([1]); // synchronously: no timer before an idle landing
    await first;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await grouper.handle(topic, telemetry("gw-i", 2))).kind).toBe("landed");
    expect(groups).toEqual([1, 1]);
  });

  it("rejects only the promises of a group whose landing failed, and keeps going", async () => {
    let calls = 0;
    const ingest = new IngestService({ store, logger });
    const grouper = new MessageGrouper({
      lander: {
        landTogether(messages: readonly IncomingMessage[]) {
          calls += 1;
          if (calls === 2) return messages.map(() => Promise.reject(new Error("database gone")));
          return ingest.landTogether(messages);
        },
      },
    });
    const topic = topicFor("telemetry", "gw-grp2");
    const settled = await Promise.allSettled([1, 2, 3].map((seq) => grouper.handle(topic, telemetry("gw-grp2", seq))));
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "rejected"]);
    expect(await grouper.handle(topic, telemetry("gw-grp2", 2))).toMatchObject({ kind: "landed", inserted: 1 });
  });
});
