import type { z } from "zod";
import type { TopicKind } from "./topicNames.js";
import { EventsPayload, StatusPayload, TelemetryPayload } from "./wire.js";

export * from "./topicNames.js";

/** Topic kind → payload schema: the typed contract keyed by topic (CONVENTIONS §7). */
export const TOPIC_SCHEMAS = {
  telemetry: TelemetryPayload,
  events: EventsPayload,
  status: StatusPayload,
} as const satisfies Record<TopicKind, z.ZodType>;

export type PayloadOf<K extends TopicKind> = z.infer<(typeof TOPIC_SCHEMAS)[K]>;
