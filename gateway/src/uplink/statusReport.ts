import type { StatusPayload } from "@edgemeter/shared";
import { topicFor, WIRE_VERSION } from "@edgemeter/shared/core";
import type { Logger } from "pino";
import type { Outbox } from "../outbox/outbox.js";
import type { Clock } from "../time/clock.js";

/** What the online status says about the outbox, read each time it is published. */
export interface UplinkStatusFacts {
  bufferedReadings: number;
  oldestUnsentTs: string | null;
  /** Disk cap (DESIGN "Storage"): readings thinned / dropped unsent since the outbox was created. */
  thinnedReadings?: number;
  droppedReadings?: number;
}

/** The disk-cap counters alone: cheap enough to poll (Outbox.diskCapCounts). */
export type DiskCapCounts = () => { thinnedReadings: number; droppedReadings: number };

/** The status facts of an outbox, as main.ts hands them to the uplink. */
export function outboxStatusFacts(outbox: Pick<Outbox, "depth" | "oldestTs" | "diskCapCounts">): {
  statusFacts: () => UplinkStatusFacts;
  diskCapCounts: DiskCapCounts;
} {
  return {
    statusFacts: () => ({
      bufferedReadings: outbox.depth(),
      oldestUnsentTs: outbox.oldestTs(),
      ...outbox.diskCapCounts(),
    }),
    diskCapCounts: () => outbox.diskCapCounts(),
  };
}

/** The status fields of an uplink adapter's options (MqttUplinkOptions, AwsIotUplinkOptions). */
export interface UplinkStatusOptions {
  gatewayId: string;
  /** Reported in the online status. */
  version: string;
  /** Buffer facts for the online status, read at each (re)connect. */
  statusFacts: () => UplinkStatusFacts;
  /** When given, a change of these counters while connected re-publishes the status (StatusReporter). */
  diskCapCounts?: DiskCapCounts;
  /** How often diskCapCounts is checked while connected; default 60 s. */
  statusRefreshMs?: number;
}

/** The StatusReporter of an uplink adapter: it publishes through the adapter (QoS 1, retained). */
export function uplinkStatusReporter(
  options: UplinkStatusOptions,
  uplink: {
    certificateExpiresAt: () => string | null;
    publish: (topic: string, payload: Buffer, publishOptions: { qos: 1; retain: true }) => Promise<void>;
  },
  clock: Clock,
  logger: Logger,
): StatusReporter {
  return new StatusReporter({
    gatewayId: options.gatewayId,
    version: options.version,
    statusFacts: options.statusFacts,
    ...(options.diskCapCounts === undefined ? {} : { diskCapCounts: options.diskCapCounts }),
    ...(options.statusRefreshMs === undefined ? {} : { refreshMs: options.statusRefreshMs }),
    certificateExpiresAt: uplink.certificateExpiresAt,
    publish: (topic, payload) => uplink.publish(topic, payload, { qos: 1, retain: true }),
    clock,
    logger,
  });
}

export interface StatusReporterOptions {
  gatewayId: string;
  /** Reported in the online status. */
  version: string;
  statusFacts: () => UplinkStatusFacts;
  /**
   * Polled every `refreshMs` while connected: when the counters changed since the last online
   * status (the disk cap thinned or dropped while the broker was up, e.g. while it refused the
   * telemetry), the retained status is published again, so the cloud sees every count.
   */
  diskCapCounts?: DiskCapCounts;
  /** Default 60 s. */
  refreshMs?: number;
  /** notAfter of the client certificate (ISO), null without TLS. */
  certificateExpiresAt: () => string | null;
  /** The uplink's own publish (QoS 1, retained): rejects when not connected. */
  publish: (topic: string, payload: Buffer) => Promise<void>;
  clock: Clock;
  logger: Logger;
}

/**
 * The gateway's retained status (DESIGN "Wire contract": `status`, QoS 1, retained, with a
 * last will), the same for every uplink adapter: online with the buffer and disk-cap facts on
 * each connect and whenever the disk-cap counters change; offline as the last will and before
 * a graceful disconnect (which suppresses the will).
 */
export class StatusReporter {
  readonly topic: string;
  private refreshTimer: NodeJS.Timeout | undefined;
  /** `thinned/dropped` of the last online status the broker acknowledged. */
  private publishedCounts: string | undefined;

  constructor(private readonly options: StatusReporterOptions) {
    this.topic = topicFor("status", options.gatewayId);
  }

  /** The last will: offline, without ts (the broker sends it long after it was written). */
  willPayload(): Buffer {
    const offline: StatusPayload = { v: WIRE_VERSION, gatewayId: this.options.gatewayId, state: "offline" };
    return Buffer.from(JSON.stringify(offline));
  }

  /** Offline, stamped now: to publish before a graceful disconnect. */
  offlinePayload(): Buffer {
    const offline: StatusPayload = {
      v: WIRE_VERSION,
      gatewayId: this.options.gatewayId,
      state: "offline",
      ts: new Date(this.options.clock.nowMs()).toISOString(),
    };
    return Buffer.from(JSON.stringify(offline));
  }

  /** The session is up: publishes the online status now and keeps it current. */
  connected(): void {
    this.publishOnline();
    clearInterval(this.refreshTimer);
    this.refreshTimer = undefined;
    if (this.options.diskCapCounts === undefined) return;
    this.refreshTimer = setInterval(() => this.refresh(), this.options.refreshMs ?? 60_000);
    this.refreshTimer.unref();
  }

  /**
   * Before a graceful disconnect (which suppresses the last will): says offline when still
   * `connected`, then waits up to `deadlineMs` for the uplink's publishes in flight (the offline
   * status among them, as the uplink tracks it).
   */
  async beforeDisconnect(connected: boolean, inFlight: ReadonlySet<Promise<void>>, deadlineMs: number): Promise<void> {
    this.disconnected();
    if (connected) {
      this.options
        .publish(this.topic, this.offlinePayload())
        .catch((error: unknown) =>
          this.options.logger.debug({ err: String(error) }, "offline status not acknowledged"),
        );
    }
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, deadlineMs).unref());
    await Promise.race([Promise.allSettled([...inFlight]), deadline]);
  }

  /** The session is gone (or closing): nothing to keep current until the next connect. */
  disconnected(): void {
    clearInterval(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  private refresh(): void {
    const counts = this.options.diskCapCounts;
    if (counts === undefined) return;
    let key: string;
    try {
      const { thinnedReadings, droppedReadings } = counts();
      key = `${thinnedReadings}/${droppedReadings}`;
    } catch (error) {
      this.options.logger.debug({ err: String(error) }, "cannot read the disk-cap counters");
      return;
    }
    if (key !== this.publishedCounts) this.publishOnline();
  }

  private publishOnline(): void {
    let facts: UplinkStatusFacts;
    try {
      facts = this.options.statusFacts();
    } catch (error) {
      this.options.logger.warn({ err: String(error) }, "cannot read buffer facts for the status");
      facts = { bufferedReadings: 0, oldestUnsentTs: null };
    }
    const online: StatusPayload = {
      v: WIRE_VERSION,
      gatewayId: this.options.gatewayId,
      state: "online",
      ts: new Date(this.options.clock.nowMs()).toISOString(),
      version: this.options.version,
      bufferedReadings: facts.bufferedReadings,
      oldestUnsentTs: facts.oldestUnsentTs,
      clock: this.options.clock.isSynced() ? "synced" : "unsynced",
      certificateExpiresAt: this.options.certificateExpiresAt(),
    };
    if (facts.thinnedReadings !== undefined) online.thinnedReadings = facts.thinnedReadings;
    if (facts.droppedReadings !== undefined) online.droppedReadings = facts.droppedReadings;
    const counts = `${facts.thinnedReadings ?? 0}/${facts.droppedReadings ?? 0}`;
    this.options.publish(this.topic, Buffer.from(JSON.stringify(online))).then(
      () => {
        this.publishedCounts = counts;
      },
      (error: unknown) => this.options.logger.warn({ err: String(error) }, "online status not published"),
    );
  }
}
