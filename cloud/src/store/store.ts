import type { EventsPayload, MeasurementName, StatusPayload, TelemetryPayload } from "@edgemeter/shared";

/**
 * The cloud's storage port. One adapter (`postgresStore.ts`) implements it in the PostgreSQL
 * dialect over a `SqlClient`, which is either PGlite (embedded, in a data directory) or a
 * PostgreSQL server (`DATABASE_URL`): the same SQL runs on both.
 */
export interface MeterRow {
  meterId: string;
  gatewayId: string | null;
  customerId: string | null;
  tariffId: string | null;
  latitude: number | null;
  longitude: number | null;
  timeZone: string | null;
  firstSeenAt: string | null;
  lastReadingAt: string | null;
}

export interface GatewayRow {
  gatewayId: string;
  online: boolean;
  firstSeenAt: string;
  lastSeenAt: string;
  status: StatusPayload | null;
}

export interface ReadingRow {
  meterId: string;
  gatewayId: string;
  seq: number;
  /** ISO 8601 UTC with milliseconds. */
  ts: string;
  clock: "synced" | "unsynced";
  values: Partial<Record<MeasurementName, number>>;
  receivedAt: string;
}

export interface LandResult {
  /** Readings newly stored. */
  inserted: number;
  /** Readings already present (a replayed or duplicated batch): nothing changed for them. */
  duplicates: number;
}

export interface RejectedMessage {
  topic: string;
  reason: string;
  /** The raw payload as received (kept for inspection; truncated to 256 KB). */
  payload: Buffer;
}

export interface RejectedMessageRow {
  id: number;
  receivedAt: string;
  topic: string;
  reason: string;
  payloadText: string;
}

export interface ApiKeyRow {
  id: number;
  name: string;
  scopes: ("read" | "admin")[];
  createdAt: string;
  revokedAt: string | null;
}

export interface Page {
  limit: number;
  offset: number;
}

export interface Store {
  /** Applies pending SQL migrations in order (idempotent; safe with several instances starting at once). */
  migrate(): Promise<void>;
  /**
   * Lands a validated telemetry batch in one transaction: readings keyed by (meterId, ts), so a
   * replayed batch changes nothing; registers unseen meters and the gateway, updates last-seen.
   * @throws EdgemeterError storage.* (retryable when the database is unreachable)
   */
  landTelemetry(payload: TelemetryPayload, receivedAt: Date): Promise<LandResult>;
  landEvents(payload: EventsPayload, receivedAt: Date): Promise<LandResult>;
  recordStatus(payload: StatusPayload, receivedAt: Date): Promise<void>;
  recordRejected(message: RejectedMessage, receivedAt: Date): Promise<void>;
  countRejected(): Promise<number>;
  listRejected(page: Page): Promise<RejectedMessageRow[]>;

  listMeters(page: Page): Promise<MeterRow[]>;
  getMeter(meterId: string): Promise<MeterRow | null>;
  listGateways(page: Page): Promise<GatewayRow[]>;
  /** Readings of one meter with from <= ts < to, oldest first. */
  readings(meterId: string, from: Date, to: Date, page: Page): Promise<ReadingRow[]>;

  /** Stores only the SHA-256 of the key. */
  createApiKey(name: string, keyHash: string, scopes: ("read" | "admin")[]): Promise<ApiKeyRow>;
  findApiKeyByHash(keyHash: string): Promise<ApiKeyRow | null>;
  revokeApiKey(id: number): Promise<void>;

  close(): Promise<void>;
}
