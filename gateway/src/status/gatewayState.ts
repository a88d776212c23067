/**
 * What the status page shows, as one read-only snapshot (issue 6). The page, `/api/status`
 * and `/metrics` all render the same snapshot, so the three can never disagree.
 * main.ts feeds it from the running components; nothing here does I/O on its own.
 */

/** Uplink as a technician reads it: `retrying` covers connecting and dropped connections. */
export type UplinkHealth = "connected" | "retrying" | "rejected" | "closed";

/**
 * - `waiting`: started less than three poll intervals ago, no reading yet;
 * - `ok`: the last reading carried every value;
 * - `errors`: the last reading carried errors (some registers failed);
 * - `offline`: the bus scheduler gave the meter up (polls in a row without a value), or no
 *   reading for three poll intervals (at least 10 s).
 */
export type MeterState = "waiting" | "ok" | "errors" | "offline";

export interface MeterStatus {
  id: string;
  busId: string;
  state: MeterState;
  pollIntervalMs: number;
  /** ISO 8601 UTC of the last reading, or null before the first. */
  lastReadingTs: string | null;
  lastReadingAgeS: number | null;
  readings: number;
  /** Readings that carried at least one error entry. */
  readingsWithErrors: number;
  /** Error entries seen in readings (one failed request = one entry). */
  errorCount: number;
  /** Polls in a row that gave no value at all (0 when the last poll gave one). */
  failedPollsInARow: number;
  /** The errors of the last reading (empty when it was clean). */
  lastErrors: { code: string; message: string }[];
  /** The last reading's values, canonical names with units (`voltageL1V`, …). */
  values: Record<string, number>;
}

/** A fault as the events list shows it: one row from start to end. */
export interface StatusEvent {
  eventId: string;
  meterId: string;
  /** e.g. `overvoltage`, `undervoltage`, `phaseLoss` (the fault detector's vocabulary). */
  kind: string;
  phase: string | null;
  startTs: string;
  /** null while the fault is active. */
  endTs: string | null;
  active: boolean;
  /** The value furthest beyond the threshold seen during the fault. */
  extremeValue: number | null;
  threshold: number | null;
  /** Until now while active. */
  durationMs: number;
}

export interface BusStatus {
  id: string;
  polls: number;
  readings: number;
  failedRequests: number;
  skippedPolls: number;
}

export interface StatusSnapshot {
  gatewayId: string;
  version: string;
  /** ISO 8601 UTC, when the snapshot was taken. */
  now: string;
  uptimeS: number;
  uplink: { state: UplinkHealth; reason: string | null; publishedBatches: number; rejectedBatches: number };
  outbox: {
    bufferedReadings: number;
    oldestUnsentTs: string | null;
    oldestUnsentAgeS: number | null;
    /** Database size and its cap (null: unknown / no cap). */
    usedBytes: number | null;
    capBytes: number | null;
    /** Interval readings deleted unsent under the disk cap (energy kept at 15 min), since the outbox was made. */
    thinnedReadings: number;
    /** Readings deleted unsent because thinning could not make room. */
    droppedReadings: number;
    /** Fault events not yet acknowledged by the broker. */
    pendingEvents: number;
  };
  /** null when the uplink has no client certificate (plain MQTT, tests and demos only). */
  certificate: {
    file: string;
    notAfter: string | null;
    expiresInDays: number | null;
    /** Under CERT_WARNING_DAYS left, or unreadable. */
    warning: boolean;
    error: string | null;
  } | null;
  clock: { synced: boolean };
  /** null when the file system cannot be asked (statfs unsupported). */
  disk: { path: string; usedBytes: number; totalBytes: number; usedPercent: number } | null;
  buses: BusStatus[];
  meters: MeterStatus[];
  /** Active faults first, then the most recent ended ones. */
  events: StatusEvent[];
}

/** One chart point series set of a meter: parallel arrays, `tsMs` ascending. */
export interface MeterHistory {
  meterId: string;
  tsMs: number[];
  series: Record<string, (number | null)[]>;
}

/**
 * The read-only port the status server renders. `onChange` fires after each reading or
 * event so the page can push live values (SSE) without polling the components.
 */
export interface GatewayState {
  snapshot(): StatusSnapshot;
  /** The last hour of chart series of one meter, or undefined for an unknown meter. */
  meterHistory(meterId: string): MeterHistory | undefined;
  /** Returns an unsubscribe function. */
  onChange(listener: () => void): () => void;
}

/** A certificate with fewer days left than this shows a warning (issue 6 §3). */
export const CERT_WARNING_DAYS = 30;

/** The measurements the meter detail charts (issue 6 §5): voltage per phase, frequency, power. */
export const CHART_MEASUREMENTS = ["voltageL1V", "voltageL2V", "voltageL3V", "frequencyHz", "activePowerW"] as const;
