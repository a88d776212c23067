import type { z } from "zod";
import { isValidId } from "./ids.js";
import { EventsPayload, StatusPayload, TelemetryPayload } from "./wire.js";

/** Topic root `edgemeter/v1/gw/{gatewayId}/`; a gateway may publish only below its own. */
export const TOPIC_PREFIX = "edgemeter/v1/gw";

/** Topic kind → payload schema: the typed contract keyed by topic (CONVENTIONS §7). */
export const TOPIC_SCHEMAS = {
  telemetry: TelemetryPayload,
  events: EventsPayload,
  status: StatusPayload,
} as const satisfies Record<string, z.ZodType>;

export type TopicKind = keyof typeof TOPIC_SCHEMAS;
export type PayloadOf<K extends TopicKind> = z.infer<(typeof TOPIC_SCHEMAS)[K]>;

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
  if (!Object.hasOwn(TOPIC_SCHEMAS, kind)) return null;
  return { gatewayId, kind: kind as TopicKind };
}
