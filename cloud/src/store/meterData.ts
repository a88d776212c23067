import type { MeterRow } from "./store.js";

/**
 * The platform's second storage port (issue 5): meter registry writes, consumption rollups,
 * events and outages. PostgresStore implements it next to Store; it is a separate port so the
 * foundation's Store (and its in-memory test double) stay as they were.
 */
export interface MeterRegistration {
  meterId: string;
  gatewayId: string | null;
  customerId: string | null;
  tariffId: string | null;
  latitude: number | null;
  longitude: number | null;
  /** IANA zone of the meter's billing days; null means the cloud's default. */
  timeZone: string | null;
}

export interface DailyConsumptionRow {
  /** Local calendar day "YYYY-MM-DD" in `timeZone`. */
  day: string;
  timeZone: string;
  importKwh: number;
  exportKwh: number;
}

export interface HourlyConsumptionRow {
  /** ISO 8601 UTC start of the hour. */
  hourStart: string;
  importKwh: number;
  exportKwh: number;
}

export interface OutageRow {
  id: number;
  meterId: string;
  gatewayId: string | null;
  cause: "interruption" | "gateway_offline" | "silence";
  startedAt: string;
  endedAt: string | null;
  latitude: number | null;
  longitude: number | null;
}

export interface EventRow {
  gatewayId: string;
  eventId: string;
  state: "start" | "end" | "instant";
  meterId: string;
  kind: string;
  phase: string | null;
  value: number | null;
  threshold: number | null;
  ts: string;
  durationMs: number | null;
  clock: "synced" | "unsynced";
}

export interface MeterDataStore {
  /**
   * Creates or replaces the registry fields of a meter (readings keep their history). A changed
   * time zone rebuilds the meter's rollups from its readings, since its days changed.
   * @throws EdgemeterError storage.notFound when gatewayId names no known gateway.
   */
  registerMeter(meter: MeterRegistration): Promise<MeterRow>;
  /** Daily rollups with from <= day < to (local days, "YYYY-MM-DD"), oldest first. */
  dailyConsumption(meterId: string, fromDay: string, toDay: string): Promise<DailyConsumptionRow[]>;
  /** Hourly rollups with from <= hour_start < to, oldest first. */
  hourlyConsumption(meterId: string, from: Date, to: Date): Promise<HourlyConsumptionRow[]>;
  /** Outages overlapping [from, to): started before `to` and not ended before `from`, oldest first. */
  outages(from: Date, to: Date): Promise<OutageRow[]>;
  /** Outages that started within [from, to], oldest first (the seed `/outage` route). */
  outagesStarted(from: Date, to: Date): Promise<OutageRow[]>;
  /**
   * Opens a 'silence' outage for every meter whose last reading is older than `silenceMs`
   * before `now` and has none open. Returns how many were opened.
   */
  openSilenceOutages(now: Date, silenceMs: number): Promise<number>;
  /** Events with from <= ts < to, optionally of one meter, oldest first. */
  events(from: Date, to: Date, meterId: string | null, page: { limit: number; offset: number }): Promise<EventRow[]>;
}
