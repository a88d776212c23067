import { isValidId } from "./idPattern.js";

/** Topic root `edgemeter/v1/gw/{gatewayId}/`; a gateway may publish only below its own. */
export const TOPIC_PREFIX = "edgemeter/v1/gw";

/** The topic kinds below a gateway's root; topics.ts maps each to its payload schema. */
export const TOPIC_KINDS = ["telemetry", "events", "status"] as const;

export type TopicKind = (typeof TOPIC_KINDS)[number];

export function gatewayTopicRoot(gatewayId: string): string {
  return `${TOPIC_PREFIX}/${gatewayId}`;
}

export function topicFor(kind: TopicKind, gatewayId: string): string {
  if (!isValidId(gatewayId)) throw new Error(`invalid gateway id for a topic: ${JSON.stringify(gatewayId)}`);
  return `${TOPIC_PREFIX}/${gatewayId}/${kind}`;
}

/** Wildcard subscription for one kind across all gateways. */
export function allGatewaysTopic(kind: TopicKind): string {
  return `${TOPIC_PREFIX}/+/${kind}`;
}

/** MQTT 5 shared subscription: the broker hands each message to one member of the group. */
export function sharedSubscription(group: string, topic: string): string {
  return `$share/${group}/${topic}`;
}

export const INGEST_SHARE_GROUP = "edgemeter-ingest";

export interface ParsedTopic {
  gatewayId: string;
  kind: TopicKind;
}

/** Parses `edgemeter/v1/gw/{id}/{kind}`; null for anything else. */
export function parseTopic(topic: string): ParsedTopic | null {
  const parts = topic.split("/");
  if (parts.length !== 5) return null;
  const [a, b, c, gatewayId, kind] = parts as [string, string, string, string, string];
  if (`${a}/${b}/${c}` !== TOPIC_PREFIX || !isValidId(gatewayId)) return null;
  if (!(TOPIC_KINDS as readonly string[]).includes(kind)) return null;
  return { gatewayId, kind: kind as TopicKind };
}
