import { X509Certificate } from "node:crypto";
import { readFileSync, statfsSync } from "node:fs";
import type { MeterEvent } from "@edgemeter/shared";
import { describeError } from "@edgemeter/shared/core";
import type { NewReading } from "../outbox/outbox.js";
import type { Clock } from "../time/clock.js";
import type { UplinkState } from "../uplink/uplink.js";
import {
  type BusStatus,
  CERT_WARNING_DAYS,
  CHART_MEASUREMENTS,
  type GatewayState,
  type MeterHistory,
  type MeterState,
  type MeterStatus,
  type StatusEvent,
  type StatusSnapshot,
  type UplinkHealth,
} from "./gatewayState.js";
import { ChartHistory } from "./meterRing.js";

/** What main.ts hands over: read-only views of the running components. */
export interface GatewayFacts {
  gatewayId: string;
  version: string;
  clock: Clock;
  meters: readonly { id: string; busId: string; pollIntervalMs: number }[];
  outbox: { depth(): number; oldestTs(): string | null };
  uplinkState(): UplinkState;
  /** Why the uplink is not connected, from adapters that know (Uplink.status). */
  uplinkProblem?(): UplinkProblemFacts | undefined;
  /** Forwarder counters: a rejection since the last successful publish means `rejected`. */
  forwarderStats(): { publishedBatches: number; rejectedBatches: number };
  busStats(): BusStatus[];
  /** The bus schedulers' own view of each meter (offline after N failed polls), when they have one. */
  meterPollStats?(): readonly { meterId: string; state: string; polls: number; consecutiveFailedPolls: number }[];
  /** The outbox's cap and what it had to thin or drop (DESIGN "Storage"), when it reports them. */
  outboxStats?(): {
    usedBytes: number;
    capBytes: number | null;
    thinnedReadings: number;
    droppedReadings: number;
    pendingEvents: number;
  };
  /** The uplink's client certificate (PEM), for its expiry; undefined without TLS. */
  certFile?: string;
  /** Where the outbox lives: the disk use shown is that file system's. */
  dataDir: string;
  /**
   * Keep the last hour of chart points per meter (the status page's charts). Default true;
   * main.ts turns it off when no status page is configured: nobody would read the ~170 KB per
   * meter (issue 4 footprint).
   */
  chartHistory?: boolean;
}

/** The part of the uplink adapter's own status the page shows (structural: adapters differ). */
export interface UplinkProblemFacts {
  problem: string | null;
  detail: string | null;
  nextAttemptAt?: string | null;
}

/** The uplink's problem words (gateway/src/uplink/uplink.ts UplinkProblem) for a technician. */
const UPLINK_PROBLEMS: Record<string, { state: UplinkHealth; reason: string }> = {
  brokerUnreachable: {
    state: "retrying",
    reason: "broker unreachable (connection refused: broker down or restarting)",
  },
  networkDown: { state: "retrying", reason: "network down (no route, DNS or timeout: check cable, modem, firewall)" },
  connectionLost: { state: "retrying", reason: "connection lost; reconnecting" },
  certificateExpired: { state: "rejected", reason: "the client certificate has expired: renew it" },
  certificateRejected: {
    state: "rejected",
    reason: "certificate refused (the broker refused ours, or we refused the broker's)",
  },
  notAuthorized: { state: "rejected", reason: "the broker refused the session (not authorized)" },
};

/**
 * A fault start or end as the fault detector reports it (DESIGN "Wire contract", `events`):
 * an end carries the same eventId as its start.
 */
export interface FaultEventInput {
  type: "start" | "end" | "update";
  eventId: string;
  meterId: string;
  kind: string;
  phase?: string | null;
  /** Value at this moment (start/update) or the extreme value (end). */
  value?: number | null;
  threshold?: number | null;
  ts: string;
  /** On an end whose start was not seen (e.g. before a restart): how long the fault lasted. */
  durationMs?: number | null;
}

/** A meter with no reading for this many poll intervals (and at least OFFLINE_MIN_MS) is offline. */
const OFFLINE_POLL_INTERVALS = 3;
const OFFLINE_MIN_MS = 10_000;
const MAX_ENDED_EVENTS = 100;
/** The certificate file is re-read at most this often (a renewal replaces it in place). */
const CERT_CACHE_MS = 60_000;
const DAY_MS = 86_400_000;

interface MeterRecord {
  id: string;
  busId: string;
  pollIntervalMs: number;
  /** null without chart history (GatewayFacts.chartHistory). */
  history: ChartHistory | null;
  readings: number;
  readingsWithErrors: number;
  errorCount: number;
  lastTsMs: number | null;
  lastTs: string | null;
  /** Monotonic time the last reading arrived: the age must not jump with NTP. */
  lastSeenMonoMs: number | null;
  lastErrors: { code: string; message: string }[];
  values: Record<string, number>;
}

interface EventRecord {
  eventId: string;
  meterId: string;
  kind: string;
  phase: string | null;
  startTs: string;
  endTs: string | null;
  extremeValue: number | null;
  threshold: number | null;
}

/**
 * The in-memory GatewayState: it records readings (tapped after the outbox stored them) and
 * fault events, and reads the other figures from the components when a snapshot is taken.
 */
export class LiveGatewayState implements GatewayState {
  private readonly meters = new Map<string, MeterRecord>();
  private readonly events = new Map<string, EventRecord>();
  private readonly listeners = new Set<() => void>();
  private readonly startedMonoMs: number;
  private cert: { readAtMonoMs: number; value: StatusSnapshot["certificate"] } | undefined;

  constructor(private readonly facts: GatewayFacts) {
    this.startedMonoMs = facts.clock.monotonicMs();
    for (const meter of facts.meters) {
      this.meters.set(meter.id, {
        ...meter,
        history: facts.chartHistory === false ? null : new ChartHistory(CHART_MEASUREMENTS),
        readings: 0,
        readingsWithErrors: 0,
        errorCount: 0,
        lastTsMs: null,
        lastTs: null,
        lastSeenMonoMs: null,
        lastErrors: [],
        values: {},
      });
    }
  }

  /** Call after the outbox stored the reading. Readings of unknown meters are ignored. */
  recordReading(reading: NewReading): void {
    const meter = this.meters.get(reading.meterId);
    if (meter === undefined) return;
    const tsMs = Date.parse(reading.ts);
    meter.readings++;
    const errors = reading.errors ?? [];
    if (errors.length > 0) meter.readingsWithErrors++;
    meter.errorCount += errors.length;
    meter.lastErrors = errors.map((e) => ({ code: e.code, message: e.message }));
    meter.lastTs = reading.ts;
    meter.lastTsMs = tsMs;
    meter.lastSeenMonoMs = this.facts.clock.monotonicMs();
    meter.values = { ...reading.values } as Record<string, number>;
    meter.history?.push(tsMs, meter.values);
    this.changed();
  }

  /**
   * A fault detector event as on the wire (`MeterEvent`): main.ts passes each detected event
   * here. An `instant` event (e.g. a register that went backwards) starts and ends at once.
   */
  recordMeterEvent(event: MeterEvent): void {
    const common = {
      eventId: event.eventId,
      meterId: event.meterId,
      kind: event.kind,
      phase: event.phase,
      value: event.value,
      threshold: event.threshold,
      ts: event.ts,
    };
    if (event.state === "instant") {
      this.recordFaultEvent({ ...common, type: "start" });
      this.recordFaultEvent({ ...common, type: "end" });
    } else this.recordFaultEvent({ ...common, type: event.state, durationMs: event.durationMs });
  }

  /** Records a fault start, update (new extreme) or end. */
  recordFaultEvent(event: FaultEventInput): void {
    let record = this.events.get(event.eventId);
    if (record === undefined) {
      const endWithDuration = event.type === "end" && typeof event.durationMs === "number";
      record = {
        eventId: event.eventId,
        meterId: event.meterId,
        kind: event.kind,
        phase: event.phase ?? null,
        startTs: endWithDuration
          ? new Date(Date.parse(event.ts) - (event.durationMs as number)).toISOString()
          : event.ts,
        endTs: null,
        extremeValue: null,
        threshold: event.threshold ?? null,
      };
      this.events.set(event.eventId, record);
    }
    if (event.value !== undefined && event.value !== null) {
      record.extremeValue = moreExtreme(record.extremeValue, event.value, record.threshold);
    }
    if (event.threshold !== undefined && event.threshold !== null) record.threshold = event.threshold;
    if (event.type === "end") record.endTs = event.ts;
    this.pruneEnded();
    this.changed();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  meterHistory(meterId: string): MeterHistory | undefined {
    const meter = this.meters.get(meterId);
    if (meter === undefined) return undefined;
    if (meter.history === null) return { meterId, tsMs: [], series: {} };
    return { meterId, ...meter.history.read(this.facts.clock.nowMs()) };
  }

  snapshot(): StatusSnapshot {
    const { facts } = this;
    const nowMs = facts.clock.nowMs();
    const monoMs = facts.clock.monotonicMs();
    const oldestTs = facts.outbox.oldestTs();
    const oldestMs = oldestTs === null ? Number.NaN : Date.parse(oldestTs);
    const stats = facts.forwarderStats();
    const outboxStats = facts.outboxStats?.();
    const pollStats = new Map((facts.meterPollStats?.() ?? []).map((p) => [p.meterId, p]));
    return {
      gatewayId: facts.gatewayId,
      version: facts.version,
      now: new Date(nowMs).toISOString(),
      uptimeS: Math.floor((monoMs - this.startedMonoMs) / 1000),
      uplink: {
        ...this.uplinkStatus(),
        publishedBatches: stats.publishedBatches,
        rejectedBatches: stats.rejectedBatches,
      },
      outbox: {
        bufferedReadings: facts.outbox.depth(),
        oldestUnsentTs: oldestTs,
        oldestUnsentAgeS: Number.isNaN(oldestMs) ? null : Math.max(0, Math.floor((nowMs - oldestMs) / 1000)),
        usedBytes: outboxStats?.usedBytes ?? null,
        capBytes: outboxStats?.capBytes ?? null,
        thinnedReadings: outboxStats?.thinnedReadings ?? 0,
        droppedReadings: outboxStats?.droppedReadings ?? 0,
        pendingEvents: outboxStats?.pendingEvents ?? 0,
      },
      certificate: this.certificate(nowMs, monoMs),
      clock: { synced: facts.clock.isSynced() },
      disk: this.disk(),
      buses: facts.busStats(),
      meters: [...this.meters.values()].map((m) => this.meterStatus(m, monoMs, pollStats.get(m.id))),
      events: this.eventList(nowMs),
    };
  }

  private rejectedSince = { published: -1, rejected: 0 };

  /**
   * The uplink adapter knows connected or not; a broker that accepts the connection but
   * refuses the publishes (ACL, issue 2) shows only in the forwarder's counters: a rejection
   * after the last successful publish means the gateway is `rejected`.
   */
  private uplinkStatus(): { state: UplinkHealth; reason: string | null } {
    const state = this.facts.uplinkState();
    const stats = this.facts.forwarderStats();
    if (stats.publishedBatches !== this.rejectedSince.published) {
      this.rejectedSince = { published: stats.publishedBatches, rejected: stats.rejectedBatches };
    }
    const problem = state === "connected" || state === "closed" ? undefined : this.facts.uplinkProblem?.();
    if (problem?.problem != null) {
      const known = UPLINK_PROBLEMS[problem.problem];
      const next = problem.nextAttemptAt == null ? Number.NaN : Date.parse(problem.nextAttemptAt);
      const retry = Number.isNaN(next)
        ? ""
        : `; next attempt in ${Math.max(0, Math.ceil((next - this.facts.clock.nowMs()) / 1000))} s`;
      const reason = known?.reason ?? problem.detail ?? problem.problem;
      const detail = known !== undefined && problem.detail !== null ? ` (${problem.detail})` : "";
      return { state: known?.state ?? "retrying", reason: `${reason}${detail}${retry}` };
    }
    switch (state) {
      case "connected":
        if (stats.rejectedBatches > this.rejectedSince.rejected) {
          return {
            state: "rejected",
            reason: "the broker refuses this gateway's telemetry (not authorized: check its ACL / certificate policy)",
          };
        }
        return { state: "connected", reason: null };
      case "connecting":
        return { state: "retrying", reason: "connecting to the broker" };
      case "disconnected":
        return { state: "retrying", reason: "connection lost; reconnecting" };
      case "closed":
        return { state: "closed", reason: "the gateway is stopping" };
    }
  }

  private meterStatus(
    m: MeterRecord,
    monoMs: number,
    poll: { state: string; consecutiveFailedPolls: number } | undefined,
  ): MeterStatus {
    const offlineAfterMs = Math.max(OFFLINE_MIN_MS, OFFLINE_POLL_INTERVALS * m.pollIntervalMs);
    const sinceMs = m.lastSeenMonoMs === null ? monoMs - this.startedMonoMs : monoMs - m.lastSeenMonoMs;
    let state: MeterState;
    // The scheduler's verdict first (it knows about failed polls); silence as a fallback.
    if (poll?.state === "offline" || sinceMs > offlineAfterMs) state = "offline";
    else if (m.lastSeenMonoMs === null) state = "waiting";
    else state = m.lastErrors.length > 0 ? "errors" : "ok";
    return {
      id: m.id,
      busId: m.busId,
      state,
      pollIntervalMs: m.pollIntervalMs,
      lastReadingTs: m.lastTs,
      lastReadingAgeS: m.lastSeenMonoMs === null ? null : Math.floor(sinceMs / 1000),
      readings: m.readings,
      readingsWithErrors: m.readingsWithErrors,
      errorCount: m.errorCount,
      failedPollsInARow: poll?.consecutiveFailedPolls ?? 0,
      lastErrors: m.lastErrors,
      values: m.values,
    };
  }

  private eventList(nowMs: number): StatusEvent[] {
    const rows = [...this.events.values()].map((e): StatusEvent => {
      const endMs = e.endTs === null ? nowMs : Date.parse(e.endTs);
      return { ...e, active: e.endTs === null, durationMs: Math.max(0, endMs - Date.parse(e.startTs)) };
    });
    // Active first, then newest start first.
    return rows.sort((a, b) => Number(b.active) - Number(a.active) || b.startTs.localeCompare(a.startTs));
  }

  private pruneEnded(): void {
    const ended = [...this.events.values()].filter((e) => e.endTs !== null);
    ended.sort((a, b) => a.startTs.localeCompare(b.startTs));
    for (const e of ended.slice(0, Math.max(0, ended.length - MAX_ENDED_EVENTS))) this.events.delete(e.eventId);
  }

  private certificate(nowMs: number, monoMs: number): StatusSnapshot["certificate"] {
    const file = this.facts.certFile;
    if (file === undefined) return null;
    if (this.cert !== undefined && monoMs - this.cert.readAtMonoMs < CERT_CACHE_MS && this.cert.value !== null) {
      const { notAfter } = this.cert.value;
      if (notAfter === null) return this.cert.value;
      const expiresInDays = Math.floor((Date.parse(notAfter) - nowMs) / DAY_MS);
      return { ...this.cert.value, expiresInDays, warning: expiresInDays < CERT_WARNING_DAYS };
    }
    let value: StatusSnapshot["certificate"];
    try {
      const x509 = new X509Certificate(readFileSync(file));
      const notAfterMs = Date.parse(x509.validTo);
      const expiresInDays = Math.floor((notAfterMs - nowMs) / DAY_MS);
      value = {
        file,
        notAfter: new Date(notAfterMs).toISOString(),
        expiresInDays,
        warning: expiresInDays < CERT_WARNING_DAYS,
        error: null,
      };
    } catch (error) {
      value = { file, notAfter: null, expiresInDays: null, warning: true, error: describeError(error) };
    }
    this.cert = { readAtMonoMs: monoMs, value };
    return value;
  }

  private disk(): StatusSnapshot["disk"] {
    try {
      const fs = statfsSync(this.facts.dataDir);
      const totalBytes = fs.blocks * fs.bsize;
      const usedBytes = (fs.blocks - fs.bfree) * fs.bsize;
      return {
        path: this.facts.dataDir,
        usedBytes,
        totalBytes,
        usedPercent: totalBytes === 0 ? 0 : Math.round((usedBytes / totalBytes) * 1000) / 10,
      };
    } catch {
      return null;
    }
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

/** The value further from normal: above the threshold the larger, below it the smaller. */
function moreExtreme(current: number | null, value: number, threshold: number | null): number {
  if (current === null) return value;
  if (threshold === null) return Math.abs(value) > Math.abs(current) ? value : current;
  return Math.abs(value - threshold) > Math.abs(current - threshold) ? value : current;
}
