import {
  describeError,
  EdgemeterError,
  type EventsPayload,
  isEdgemeterError,
  type MeasurementName,
  type StatusPayload,
  type TelemetryPayload,
} from "@edgemeter/shared";
import type { Logger } from "pino";
import type {
  DailyConsumptionRow,
  EventRow,
  HourlyConsumptionRow,
  MeterDataStore,
  MeterRegistration,
  OutageRow,
} from "./meterData.js";
import { applyMigrations, MIGRATIONS_DIR } from "./migrations.js";
import { rebuildRollups, startGatewayOfflineOutages, startInterruptionOutages } from "./platformSql.js";
import { ReadingPartitions } from "./readingPartitions.js";
import type { SqlClient, SqlExecutor } from "./sqlClient.js";
import { sqlStateOf } from "./sqlErrors.js";
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
} from "./store.js";
import { compareStrings, LatestReadings, landPreparedBatch, prepareBatch, touchGateway } from "./telemetryLanding.js";

/** PostgreSQL's limit on bind parameters per statement (the wire protocol counts them in 16 bits). */
export const MAX_BIND_PARAMETERS = 65_535;
/** Stored rejected payloads are cut here (Store.RejectedMessage). */
export const MAX_REJECTED_PAYLOAD_BYTES = 256 * 1024;
/** SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = "23505";
/** Landing attempts of one batch that conflicts with other writers before giving up (retryably). */
const MAX_LANDING_ATTEMPTS = 3;
/** A schema failure of a 10,000-reading batch lists every bad reading; keep the row bounded. */
export const MAX_REJECTED_REASON_CHARS = 8_000;

export interface PostgresStoreOptions {
  sql: SqlClient;
  logger: Logger;
  /** Defaults to `cloud/migrations/`. */
  migrationsDir?: string;
  /** IANA zone of daily rollups for meters without their own (default UTC). */
  defaultTimeZone?: string;
}

/**
 * The Store over a SqlClient (PGlite or a PostgreSQL server). It owns the client: close()
 * closes it. Every method throws EdgemeterError storage.* (retryable when the database is
 * unreachable or a concurrent writer forced a rollback).
 */
export class PostgresStore implements Store, MeterDataStore {
  readonly #sql: SqlClient;
  readonly #logger: Logger;
  readonly #migrationsDir: string;
  readonly #partitions: ReadingPartitions;
  readonly #defaultTimeZone: string;
  /** Each meter's newest stored reading, as this store last landed it (telemetryLanding.ts). */
  readonly #latestReadings = new LatestReadings();

  constructor(options: PostgresStoreOptions) {
    this.#defaultTimeZone = options.defaultTimeZone ?? "UTC";
    this.#sql = options.sql;
    this.#logger = options.logger;
    this.#migrationsDir = options.migrationsDir ?? MIGRATIONS_DIR;
    this.#partitions = new ReadingPartitions(options.sql, options.logger);
  }

  /** The SQL client underneath, for jobs that query beyond the Store port (rollups, billing). */
  get sql(): SqlClient {
    return this.#sql;
  }

  async migrate(): Promise<void> {
    const applied = await applyMigrations(this.#sql, this.#logger, this.#migrationsDir);
    this.#logger.info({ applied, database: this.#sql.kind }, applied.length > 0 ? "migrated" : "schema is current");
  }

  async landTelemetry(payload: TelemetryPayload, receivedAt: Date): Promise<LandResult> {
    const batch = prepareBatch(payload);
    await this.#partitions.ensure(batch.months);
    const receivedAtIso = receivedAt.toISOString();
    for (let attempt = 1; ; attempt++) {
      try {
        // After a conflict, every stored reading is looked up (nothing taken from the meters' rows).
        const trustMeters = attempt === 1;
        const landed = await this.#sql.transaction((tx) =>
          landPreparedBatch(tx, batch, receivedAtIso, this.#defaultTimeZone, this.#latestReadings, trustMeters),
        );
        landed.remember(this.#latestReadings);
        return landed.result;
      } catch (error) {
        // A reading stored by someone else between our look and our write, or by a writer that
        // skipped meters.last_reading_at (telemetryLanding.ts): the transaction rolled back; the
        // next attempt looks every stored reading up and sees it as stored.
        const conflict = isEdgemeterError(error, "storage.conflict") || sqlStateOf(error) === UNIQUE_VIOLATION;
        if (!conflict) throw error;
        for (const meter of batch.meters) this.#latestReadings.delete(meter.meterId);
        if (attempt >= MAX_LANDING_ATTEMPTS) {
          throw new EdgemeterError(
            "storage.conflict",
            `batch of ${payload.gatewayId} kept conflicting: ${describeError(error)}`,
            {
              cause: error,
              retryable: true,
              context: { gatewayId: payload.gatewayId, attempts: attempt },
            },
          );
        }
        this.#logger.debug(
          { gatewayId: payload.gatewayId, attempt, err: describeError(error) },
          "landing conflict: again",
        );
      }
    }
  }

  async landEvents(payload: EventsPayload, receivedAt: Date): Promise<LandResult> {
    const events = [...payload.events].sort((a, b) =>
      a.eventId === b.eventId ? compareStrings(a.state, b.state) : compareStrings(a.eventId, b.eventId),
    );
    const meterIds = [...new Set(events.map((event) => event.meterId))].sort(compareStrings);
    const receivedAtIso = receivedAt.toISOString();
    return this.#sql.transaction(async (tx) => {
      await touchGateway(tx, payload.gatewayId, receivedAtIso);
      await upsertRows(
        tx,
        meterIds,
        [payload.gatewayId, receivedAtIso],
        1,
        (tuples) => `INSERT INTO meters (meter_id, gateway_id, first_seen_at) VALUES ${tuples}
          ON CONFLICT (meter_id) DO NOTHING`,
        (meterId, p) => `(${p(meterId)}, $1, $2::timestamptz)`,
      );
      const insertedEvents = await upsertRows(
        tx,
        events,
        [payload.gatewayId, receivedAtIso],
        10,
        (tuples) => `INSERT INTO events (gateway_id, event_id, state, meter_id, kind, phase, value, threshold, ts,
            duration_ms, clock, received_at) VALUES ${tuples}
          ON CONFLICT (gateway_id, event_id, state) DO NOTHING RETURNING meter_id, kind, state, ts`,
        (event, p) =>
          `($1, ${p(event.eventId)}, ${p(event.state)}, ${p(event.meterId)}, ${p(event.kind)}, ${p(event.phase)},
            ${p(event.value)}::float8, ${p(event.threshold)}::float8, ${p(event.ts)}::timestamptz,
            ${p(event.durationMs)}::bigint, ${p(event.clock)}, $2::timestamptz)`,
      );
      await startInterruptionOutages(
        tx,
        payload.gatewayId,
        insertedEvents as { meter_id: string; kind: string; state: string; ts: unknown }[],
      );
      const inserted = insertedEvents.length;
      return { inserted, duplicates: events.length - inserted };
    });
  }

  async recordStatus(payload: StatusPayload, receivedAt: Date): Promise<void> {
    // Status is retained: every (re)subscription replays it. Its own ts (absent in the last
    // will) decides: an older status never overwrites a newer one, and only a timestamped
    // status moves last_seen_at, so a replay does not make a long-gone gateway look recent.
    await this.#sql.transaction(async (tx) => {
      const { rows } = await tx.query(
        `INSERT INTO gateways (gateway_id, first_seen_at, last_seen_at, online, status, status_at)
       VALUES ($1, $2::timestamptz, COALESCE($3::timestamptz, $2::timestamptz), $4, $5::jsonb, $3::timestamptz)
       ON CONFLICT (gateway_id) DO UPDATE SET
         online = EXCLUDED.online,
         status = EXCLUDED.status,
         status_at = COALESCE(EXCLUDED.status_at, gateways.status_at),
         last_seen_at = GREATEST(gateways.last_seen_at, EXCLUDED.status_at)
       WHERE EXCLUDED.status_at IS NULL OR gateways.status_at IS NULL OR EXCLUDED.status_at >= gateways.status_at
       RETURNING gateway_id`,
        [
          payload.gatewayId,
          receivedAt.toISOString(),
          payload.ts ?? null,
          payload.state === "online",
          JSON.stringify(payload),
        ],
      );
      // The last will (offline) puts every meter behind the gateway in outage until readings resume.
      if (rows.length > 0 && payload.state !== "online") {
        await startGatewayOfflineOutages(
          tx,
          payload.gatewayId,
          payload.ts === undefined ? receivedAt : new Date(payload.ts),
        );
      }
    });
  }

  async recordRejected(message: RejectedMessage, receivedAt: Date): Promise<void> {
    const reason =
      message.reason.length > MAX_REJECTED_REASON_CHARS
        ? `${message.reason.slice(0, MAX_REJECTED_REASON_CHARS)}… (${message.reason.length - MAX_REJECTED_REASON_CHARS} more characters)`
        : message.reason;
    await this.#sql.query(
      "INSERT INTO rejected_messages (received_at, topic, reason, payload) VALUES ($1::timestamptz, $2, $3, $4)",
      [receivedAt.toISOString(), message.topic, reason, message.payload.subarray(0, MAX_REJECTED_PAYLOAD_BYTES)],
    );
  }

  async countRejected(): Promise<number> {
    const { rows } = await this.#sql.query<{ count: unknown }>("SELECT count(*) AS count FROM rejected_messages");
    return Number(rows[0]?.count ?? 0);
  }

  async listRejected(page: Page): Promise<RejectedMessageRow[]> {
    const { rows } = await this.#sql.query<{
      id: unknown;
      received_at: unknown;
      topic: string;
      reason: string;
      payload: Uint8Array;
    }>("SELECT id, received_at, topic, reason, payload FROM rejected_messages ORDER BY id DESC LIMIT $1 OFFSET $2", [
      page.limit,
      page.offset,
    ]);
    return rows.map((row) => ({
      id: Number(row.id),
      receivedAt: isoTime(row.received_at),
      topic: row.topic,
      reason: row.reason,
      payloadText: Buffer.from(row.payload).toString("utf8"),
    }));
  }

  async listMeters(page: Page): Promise<MeterRow[]> {
    const { rows } = await this.#sql.query<MeterRecord>(`${SELECT_METERS} ORDER BY meter_id LIMIT $1 OFFSET $2`, [
      page.limit,
      page.offset,
    ]);
    return rows.map(toMeterRow);
  }

  async getMeter(meterId: string): Promise<MeterRow | null> {
    const { rows } = await this.#sql.query<MeterRecord>(`${SELECT_METERS} WHERE meter_id = $1`, [meterId]);
    const row = rows[0];
    return row === undefined ? null : toMeterRow(row);
  }

  async listGateways(page: Page): Promise<GatewayRow[]> {
    const { rows } = await this.#sql.query<{
      gateway_id: string;
      online: boolean;
      first_seen_at: unknown;
      last_seen_at: unknown;
      status: StatusPayload | null;
    }>(
      `SELECT gateway_id, online, first_seen_at, last_seen_at, status FROM gateways
       ORDER BY gateway_id LIMIT $1 OFFSET $2`,
      [page.limit, page.offset],
    );
    return rows.map((row) => ({
      gatewayId: row.gateway_id,
      online: row.online,
      firstSeenAt: isoTime(row.first_seen_at),
      lastSeenAt: isoTime(row.last_seen_at),
      status: row.status,
    }));
  }

  async readings(meterId: string, from: Date, to: Date, page: Page): Promise<ReadingRow[]> {
    const { rows } = await this.#sql.query<{
      meter_id: string;
      gateway_id: string;
      seq: unknown;
      ts: unknown;
      clock: "synced" | "unsynced";
      values: Partial<Record<MeasurementName, number>>;
      received_at: unknown;
    }>(
      `SELECT meter_id, gateway_id, seq, ts, clock, "values", received_at FROM readings
       WHERE meter_id = $1 AND ts >= $2::timestamptz AND ts < $3::timestamptz
       ORDER BY ts LIMIT $4 OFFSET $5`,
      [meterId, from.toISOString(), to.toISOString(), page.limit, page.offset],
    );
    return rows.map((row) => ({
      meterId: row.meter_id,
      gatewayId: row.gateway_id,
      seq: Number(row.seq),
      ts: isoTime(row.ts),
      clock: row.clock,
      values: row.values,
      receivedAt: isoTime(row.received_at),
    }));
  }

  async createApiKey(name: string, keyHash: string, scopes: ("read" | "admin")[]): Promise<ApiKeyRow> {
    const { rows } = await this.#sql.query<ApiKeyRecord>(
      `INSERT INTO api_keys (name, key_hash, scopes) VALUES ($1, $2, $3::text[])
       RETURNING id, name, scopes, created_at, revoked_at`,
      [name, keyHash, scopes],
    );
    const row = rows[0];
    if (row === undefined) throw new EdgemeterError("storage.query", "creating an API key returned no row");
    return toApiKeyRow(row);
  }

  /** The key with this hash, revoked or not: callers must check `revokedAt`. */
  async findApiKeyByHash(keyHash: string): Promise<ApiKeyRow | null> {
    const { rows } = await this.#sql.query<ApiKeyRecord>(
      "SELECT id, name, scopes, created_at, revoked_at FROM api_keys WHERE key_hash = $1",
      [keyHash],
    );
    const row = rows[0];
    return row === undefined ? null : toApiKeyRow(row);
  }

  /**
   * Revokes a key (revoking it again keeps the first revocation time).
   * @throws EdgemeterError storage.notFound when no key has this id.
   */
  async revokeApiKey(id: number): Promise<void> {
    const { rows } = await this.#sql.query(
      "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING id",
      [id],
    );
    if (rows.length === 0)
      throw new EdgemeterError("storage.notFound", `no API key with id ${id}`, { context: { id } });
  }

  /** All keys, oldest first (beyond the Store port: for the CLI). */
  async listApiKeys(): Promise<ApiKeyRow[]> {
    const { rows } = await this.#sql.query<ApiKeyRecord>(
      "SELECT id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY id",
    );
    return rows.map(toApiKeyRow);
  }

  async registerMeter(meter: MeterRegistration): Promise<MeterRow> {
    return this.#sql.transaction(async (tx) => {
      if (meter.gatewayId !== null) {
        const { rows } = await tx.query("SELECT 1 FROM gateways WHERE gateway_id = $1", [meter.gatewayId]);
        if (rows.length === 0) {
          throw new EdgemeterError("storage.notFound", `no gateway with id ${meter.gatewayId}`, {
            context: { gatewayId: meter.gatewayId },
          });
        }
      }
      const before = await tx.query<{ time_zone: string | null }>("SELECT time_zone FROM meters WHERE meter_id = $1", [
        meter.meterId,
      ]);
      const { rows } = await tx.query<MeterRecord>(
        `INSERT INTO meters (meter_id, gateway_id, customer_id, tariff_id, latitude, longitude, time_zone)
         VALUES ($1, $2, $3, $4, $5::float8, $6::float8, $7)
         ON CONFLICT (meter_id) DO UPDATE SET gateway_id = EXCLUDED.gateway_id, customer_id = EXCLUDED.customer_id,
           tariff_id = EXCLUDED.tariff_id, latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude,
           time_zone = EXCLUDED.time_zone
         RETURNING meter_id, gateway_id, customer_id, tariff_id, latitude, longitude, time_zone, first_seen_at, last_reading_at`,
        [
          meter.meterId,
          meter.gatewayId,
          meter.customerId,
          meter.tariffId,
          meter.latitude,
          meter.longitude,
          meter.timeZone,
        ],
      );
      const previousZone = before.rows[0]?.time_zone ?? null;
      if (before.rows.length > 0 && previousZone !== meter.timeZone) {
        await rebuildRollups(tx, meter.meterId, meter.timeZone ?? this.#defaultTimeZone);
      }
      const row = rows[0];
      if (row === undefined) throw new EdgemeterError("storage.query", "registering a meter returned no row");
      return toMeterRow(row);
    });
  }

  async dailyConsumption(meterId: string, fromDay: string, toDay: string): Promise<DailyConsumptionRow[]> {
    const { rows } = await this.#sql.query<{ day: string; time_zone: string; import_kwh: number; export_kwh: number }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, time_zone, import_kwh, export_kwh FROM consumption_daily
       WHERE meter_id = $1 AND day >= $2::date AND day < $3::date ORDER BY day`,
      [meterId, fromDay, toDay],
    );
    return rows.map((row) => ({
      day: row.day,
      timeZone: row.time_zone,
      importKwh: Number(row.import_kwh),
      exportKwh: Number(row.export_kwh),
    }));
  }

  async hourlyConsumption(meterId: string, from: Date, to: Date): Promise<HourlyConsumptionRow[]> {
    const { rows } = await this.#sql.query<{ hour_start: unknown; import_kwh: number; export_kwh: number }>(
      `SELECT hour_start, import_kwh, export_kwh FROM consumption_hourly
       WHERE meter_id = $1 AND hour_start >= $2::timestamptz AND hour_start < $3::timestamptz ORDER BY hour_start`,
      [meterId, from.toISOString(), to.toISOString()],
    );
    return rows.map((row) => ({
      hourStart: isoTime(row.hour_start),
      importKwh: Number(row.import_kwh),
      exportKwh: Number(row.export_kwh),
    }));
  }

  async outages(from: Date, to: Date): Promise<OutageRow[]> {
    return this.#selectOutages(
      "o.started_at < $2::timestamptz AND (o.ended_at IS NULL OR o.ended_at >= $1::timestamptz)",
      from,
      to,
    );
  }

  async outagesStarted(from: Date, to: Date): Promise<OutageRow[]> {
    return this.#selectOutages("o.started_at >= $1::timestamptz AND o.started_at <= $2::timestamptz", from, to);
  }

  async #selectOutages(where: string, from: Date, to: Date): Promise<OutageRow[]> {
    const { rows } = await this.#sql.query<{
      id: unknown;
      meter_id: string;
      gateway_id: string | null;
      cause: OutageRow["cause"];
      started_at: unknown;
      ended_at: unknown;
      latitude: number | null;
      longitude: number | null;
    }>(
      `SELECT o.id, o.meter_id, o.gateway_id, o.cause, o.started_at, o.ended_at, m.latitude, m.longitude
       FROM outages o LEFT JOIN meters m ON m.meter_id = o.meter_id
       WHERE ${where} ORDER BY o.started_at, o.meter_id`,
      [from.toISOString(), to.toISOString()],
    );
    return rows.map((row) => ({
      id: Number(row.id),
      meterId: row.meter_id,
      gatewayId: row.gateway_id,
      cause: row.cause,
      startedAt: isoTime(row.started_at),
      endedAt: row.ended_at === null ? null : isoTime(row.ended_at),
      latitude: row.latitude === null ? null : Number(row.latitude),
      longitude: row.longitude === null ? null : Number(row.longitude),
    }));
  }

  async openSilenceOutages(now: Date, silenceMs: number): Promise<number> {
    const { rows } = await this.#sql.query(
      `INSERT INTO outages (meter_id, gateway_id, cause, started_at)
       SELECT meter_id, gateway_id, 'silence', last_reading_at FROM meters
       WHERE last_reading_at < $1::timestamptz - make_interval(secs => $2::float8 / 1000)
       ON CONFLICT (meter_id) WHERE ended_at IS NULL DO NOTHING RETURNING id`,
      [now.toISOString(), silenceMs],
    );
    return rows.length;
  }

  async events(from: Date, to: Date, meterId: string | null, page: Page): Promise<EventRow[]> {
    const { rows } = await this.#sql.query<{
      gateway_id: string;
      event_id: string;
      state: EventRow["state"];
      meter_id: string;
      kind: string;
      phase: string | null;
      value: number | null;
      threshold: number | null;
      ts: unknown;
      duration_ms: unknown;
      clock: EventRow["clock"];
    }>(
      `SELECT gateway_id, event_id, state, meter_id, kind, phase, value, threshold, ts, duration_ms, clock FROM events
       WHERE ts >= $1::timestamptz AND ts < $2::timestamptz AND ($3::text IS NULL OR meter_id = $3)
       ORDER BY ts, gateway_id, event_id, state LIMIT $4 OFFSET $5`,
      [from.toISOString(), to.toISOString(), meterId, page.limit, page.offset],
    );
    return rows.map((row) => ({
      gatewayId: row.gateway_id,
      eventId: row.event_id,
      state: row.state,
      meterId: row.meter_id,
      kind: row.kind,
      phase: row.phase,
      value: row.value === null ? null : Number(row.value),
      threshold: row.threshold === null ? null : Number(row.threshold),
      ts: isoTime(row.ts),
      durationMs: row.duration_ms === null ? null : Number(row.duration_ms),
      clock: row.clock,
    }));
  }

  close(): Promise<void> {
    return this.#sql.close();
  }
}

/**
 * Runs a multi-row INSERT for `items` in as few statements as the bind-parameter limit allows.
 * `shared` become $1…$n in every statement; `tuple` renders one item's VALUES tuple, taking
 * each of its (at most `perItem`) parameters through `p`. Returns the rows the statements
 * returned (their RETURNING clause names what was really inserted).
 */
async function upsertRows<T>(
  tx: SqlExecutor,
  items: readonly T[],
  shared: readonly unknown[],
  perItem: number,
  statement: (tuples: string) => string,
  tuple: (item: T, p: (value: unknown) => string) => string,
): Promise<Record<string, unknown>[]> {
  const chunkSize = Math.floor((MAX_BIND_PARAMETERS - shared.length) / perItem);
  const returned: Record<string, unknown>[] = [];
  for (let start = 0; start < items.length; start += chunkSize) {
    const params: unknown[] = [...shared];
    const p = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    const tuples = items
      .slice(start, start + chunkSize)
      .map((item) => tuple(item, p))
      .join(",\n");
    const { rows } = await tx.query<Record<string, unknown>>(statement(tuples), params);
    returned.push(...rows);
  }
  return returned;
}

const SELECT_METERS = `SELECT meter_id, gateway_id, customer_id, tariff_id, latitude, longitude, time_zone,
  first_seen_at, last_reading_at FROM meters`;

interface MeterRecord {
  meter_id: string;
  gateway_id: string | null;
  customer_id: string | null;
  tariff_id: string | null;
  latitude: number | null;
  longitude: number | null;
  time_zone: string | null;
  first_seen_at: unknown;
  last_reading_at: unknown;
}

function toMeterRow(row: MeterRecord): MeterRow {
  return {
    meterId: row.meter_id,
    gatewayId: row.gateway_id,
    customerId: row.customer_id,
    tariffId: row.tariff_id,
    latitude: row.latitude === null ? null : Number(row.latitude),
    longitude: row.longitude === null ? null : Number(row.longitude),
    timeZone: row.time_zone,
    firstSeenAt: row.first_seen_at === null ? null : isoTime(row.first_seen_at),
    lastReadingAt: row.last_reading_at === null ? null : isoTime(row.last_reading_at),
  };
}

interface ApiKeyRecord {
  id: unknown;
  name: string;
  scopes: ("read" | "admin")[];
  created_at: unknown;
  revoked_at: unknown;
}

function toApiKeyRow(row: ApiKeyRecord): ApiKeyRow {
  return {
    id: Number(row.id),
    name: row.name,
    scopes: row.scopes,
    createdAt: isoTime(row.created_at),
    revokedAt: row.revoked_at === null ? null : isoTime(row.revoked_at),
  };
}

/** Both drivers return timestamptz as Date; ISO 8601 UTC with milliseconds is the contract. */
function isoTime(value: unknown): string {
  const date = value instanceof Date ? value : new Date(String(value));
  if (Number.isNaN(date.getTime())) throw new EdgemeterError("storage.query", `not a time: ${String(value)}`);
  return date.toISOString();
}
