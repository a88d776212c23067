import type { EventsPayload, StatusPayload, TelemetryPayload } from "@edgemeter/shared";
import type {
  ApiKeyRow,
  GatewayRow,
  LandResult,
  MeterRow,
  Page,
  ReadingRow,
  RejectedMessage,
  RejectedMessageRow,
  Store,
} from "../../store/store.js";

/**
 * An in-memory fake of the `Store` port for API unit tests (CONVENTIONS §9: fakes, not mocks).
 * It keeps the port's documented semantics that the API relies on (readings keyed by
 * (meterId, ts), from <= ts < to oldest first, paging, revocation) and nothing more; the
 * PGlite/PostgreSQL adapter is the real thing and has its own tests.
 */
export class MemoryStore implements Store {
  private readonly meters = new Map<string, MeterRow>();
  private readonly gateways = new Map<string, GatewayRow>();
  /** Keyed by `${meterId}\u0000${ts}`. */
  private readonly readingsByKey = new Map<string, ReadingRow>();
  private readonly seqsSeen = new Set<string>();
  private readonly eventIds = new Set<string>();
  private readonly rejected: RejectedMessageRow[] = [];
  private readonly apiKeys: (ApiKeyRow & { keyHash: string })[] = [];
  closed = false;

  async migrate(): Promise<void> {}

  async landTelemetry(payload: TelemetryPayload, receivedAt: Date): Promise<LandResult> {
    const received = receivedAt.toISOString();
    this.touchGateway(payload.gatewayId, received);
    let inserted = 0;
    let duplicates = 0;
    for (const reading of payload.readings) {
      const key = `${reading.meterId}\u0000${reading.ts}`;
      const seqKey = `${payload.gatewayId}\u0000${reading.seq}`;
      if (this.readingsByKey.has(key) || this.seqsSeen.has(seqKey)) {
        duplicates += 1;
        continue;
      }
      this.seqsSeen.add(seqKey);
      this.readingsByKey.set(key, {
        meterId: reading.meterId,
        gatewayId: payload.gatewayId,
        seq: reading.seq,
        ts: reading.ts,
        clock: reading.clock,
        values: { ...reading.values },
        receivedAt: received,
      });
      const meter = this.meters.get(reading.meterId) ?? {
        meterId: reading.meterId,
        gatewayId: payload.gatewayId,
        customerId: null,
        tariffId: null,
        latitude: null,
        longitude: null,
        timeZone: null,
        firstSeenAt: received,
        lastReadingAt: null,
      };
      meter.gatewayId = payload.gatewayId;
      if (meter.lastReadingAt === null || meter.lastReadingAt < reading.ts) meter.lastReadingAt = reading.ts;
      this.meters.set(reading.meterId, meter);
      inserted += 1;
    }
    return { inserted, duplicates };
  }

  async landEvents(payload: EventsPayload, receivedAt: Date): Promise<LandResult> {
    this.touchGateway(payload.gatewayId, receivedAt.toISOString());
    let inserted = 0;
    for (const event of payload.events) {
      const key = `${payload.gatewayId}\u0000${event.eventId}\u0000${event.state}`;
      if (!this.eventIds.has(key)) {
        this.eventIds.add(key);
        inserted += 1;
      }
    }
    return { inserted, duplicates: payload.events.length - inserted };
  }

  async recordStatus(payload: StatusPayload, receivedAt: Date): Promise<void> {
    const gateway = this.touchGateway(payload.gatewayId, receivedAt.toISOString());
    gateway.online = payload.state === "online";
    gateway.status = payload;
  }

  async recordRejected(message: RejectedMessage, receivedAt: Date): Promise<void> {
    this.rejected.push({
      id: this.rejected.length + 1,
      receivedAt: receivedAt.toISOString(),
      topic: message.topic,
      reason: message.reason,
      payloadText: message.payload.toString("utf8"),
    });
  }

  async countRejected(): Promise<number> {
    return this.rejected.length;
  }

  async listRejected(page: Page): Promise<RejectedMessageRow[]> {
    return paged([...this.rejected].reverse(), page);
  }

  async listMeters(page: Page): Promise<MeterRow[]> {
    return paged(
      [...this.meters.values()].sort((a, b) => a.meterId.localeCompare(b.meterId)),
      page,
    ).map((m) => ({ ...m }));
  }

  async getMeter(meterId: string): Promise<MeterRow | null> {
    const meter = this.meters.get(meterId);
    return meter === undefined ? null : { ...meter };
  }

  async listGateways(page: Page): Promise<GatewayRow[]> {
    return paged(
      [...this.gateways.values()].sort((a, b) => a.gatewayId.localeCompare(b.gatewayId)),
      page,
    ).map((g) => ({ ...g }));
  }

  async readings(meterId: string, from: Date, to: Date, page: Page): Promise<ReadingRow[]> {
    const fromMs = from.getTime();
    const toMs = to.getTime();
    const matching = [...this.readingsByKey.values()]
      .filter((r) => r.meterId === meterId && Date.parse(r.ts) >= fromMs && Date.parse(r.ts) < toMs)
      .sort((a, b) => Date.parse(a.ts) - Date.parse(b.ts));
    return paged(matching, page).map((r) => ({ ...r, values: { ...r.values } }));
  }

  async createApiKey(name: string, keyHash: string, scopes: ("read" | "admin")[]): Promise<ApiKeyRow> {
    const row = {
      id: this.apiKeys.length + 1,
      name,
      scopes: [...scopes],
      createdAt: new Date().toISOString(),
      revokedAt: null,
      keyHash,
    };
    this.apiKeys.push(row);
    return withoutHash(row);
  }

  async findApiKeyByHash(keyHash: string): Promise<ApiKeyRow | null> {
    const row = this.apiKeys.find((k) => k.keyHash === keyHash);
    return row === undefined ? null : withoutHash(row);
  }

  async revokeApiKey(id: number): Promise<void> {
    const row = this.apiKeys.find((k) => k.id === id);
    if (row !== undefined && row.revokedAt === null) row.revokedAt = new Date().toISOString();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private touchGateway(gatewayId: string, at: string): GatewayRow {
    const gateway = this.gateways.get(gatewayId) ?? {
      gatewayId,
      online: false,
      firstSeenAt: at,
      lastSeenAt: at,
      status: null,
    };
    gateway.lastSeenAt = at;
    this.gateways.set(gatewayId, gateway);
    return gateway;
  }
}

function paged<T>(rows: T[], page: Page): T[] {
  return rows.slice(page.offset, page.offset + page.limit);
}

function withoutHash(row: ApiKeyRow & { keyHash: string }): ApiKeyRow {
  const { keyHash: _keyHash, ...rest } = row;
  return { ...rest, scopes: [...rest.scopes] };
}
