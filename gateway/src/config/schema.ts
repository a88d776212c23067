import type { MeterProfile } from "@edgemeter/hardware/decoding";
import { GatewayId, MAX_PAYLOAD_BYTES, MeterId } from "@edgemeter/shared";
import { z } from "zod";
import { LOG_LEVELS } from "../logging/logger.js";

/** gateway.yaml, as written (relative paths not yet resolved). Every object is strict: a typo is an error. */

export const MeterSchema = z.strictObject({
  id: MeterId,
  /** Modbus unit (slave) id; 248-255 are reserved by the Modbus spec. */
  unitId: z.int().min(1, "must be 1-247").max(247, "must be 1-247"),
  /** A shipped profile id (`sdm630`) or the path of a profile .yaml file. */
  profile: z.string().min(1),
  pollIntervalMs: z.int().min(100).max(86_400_000).default(1_000),
});

const busCommon = {
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1-64 characters of A-Z a-z 0-9 . _ -"),
  /**
   * modbus-serial has no default timeout: without one, a dead meter stalls the whole bus.
   * Required-with-default rather than optional so it is never absent.
   */
  timeoutMs: z.int().min(20).max(60_000).default(1_000),
  /** Silence between a response and the next request (some RS-485 converters need it). */
  interFrameGapMs: z.int().min(0).max(10_000).default(0),
  /** Extra attempts of a request that failed retryably (timeout, CRC error), with backoff and jitter. */
  retries: z.int().min(0).max(5).default(1),
  /** Consecutive polls without any value after which a meter is offline: then only re-probed, with growing backoff. */
  offlineAfterPolls: z.int().min(1).max(1_000).default(3),
  /** Longest wait between re-probes of an offline meter (the backoff doubles from its poll interval up to this). */
  maxReprobeIntervalMs: z.int().min(1_000).max(86_400_000).default(300_000),
  meters: z.array(MeterSchema).min(1, "a bus needs at least one meter").max(247),
};

export const TcpBusSchema = z.strictObject({
  ...busCommon,
  transport: z.literal("tcp"),
  host: z.string().min(1),
  port: z.int().min(1).max(65_535).default(502),
  /** "tcp": Modbus TCP (MBAP). "rtu": RTU frames with CRC over TCP (RS-485/Ethernet converters in transparent mode). */
  framing: z.enum(["tcp", "rtu"]).default("tcp"),
});

/**
 * Serial RS-485 (Modbus RTU), opened exclusively. Meters ship as 9600 8N1 or 8E1 (Eastron
 * default 9600 8N1 / 2400 for the SDM120, ABB 9600 8E1): set what the meters' menus say.
 */
export const RtuBusSchema = z.strictObject({
  ...busCommon,
  transport: z.literal("rtu"),
  /** e.g. /dev/ttyUSB0, or a /dev/serial/by-id/ path that survives re-plugging. */
  path: z.string().min(1),
  baudRate: z.int().min(1_200).max(115_200).default(9_600),
  parity: z.enum(["none", "even", "odd"]).default("none"),
  dataBits: z.union([z.literal(7), z.literal(8)]).default(8),
  stopBits: z.union([z.literal(1), z.literal(2)]).default(1),
});

export const BusSchema = z.discriminatedUnion("transport", [TcpBusSchema, RtuBusSchema], {
  error: (issue) => (issue.code === "invalid_union" ? 'must be "tcp" or "rtu"' : undefined),
});

/** URL schemes that mean TLS: they need the mTLS files (checked in loadConfig). */
export const TLS_URL_PROTOCOLS: ReadonlySet<string> = new Set(["mqtts:", "ssl:", "tls:", "wss:"]);

export const MqttUplinkSchema = z.strictObject({
  /**
   * "mqtt": mqtt.js, any MQTT broker. "awsIot" (issue 4): the AWS IoT Device SDK v2's MQTT 5
   * client (aws-crt; 64-bit OS only: aws-crt ships no 32-bit ARM binaries), same fields, an
   * mqtts:// url (the AWS IoT data endpoint, port 8883) and the three TLS files required.
   */
  kind: z.enum(["mqtt", "awsIot"], { error: 'must be "mqtt" or "awsIot"' }),
  url: z.url({ protocol: /^(mqtt|mqtts|ssl|tls|ws|wss)$/, error: "must be a URL like mqtts://broker.example:8883" }),
  /** MQTT 5 by default: only MQTT 5 tells a denied publish (PUBACK reason code >= 0x80) from an accepted one. */
  protocolVersion: z
    .union([z.literal(4), z.literal(5)], { error: "must be 5 (MQTT 5) or 4 (MQTT 3.1.1, brokers without MQTT 5 only)" })
    .default(5),
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
  /** Defaults to the gatewayId (the certificate's CN); brokers with per-cert policies expect that. */
  clientId: z.string().min(1).max(128).optional(),
  keepaliveS: z.int().min(5).max(1_200).default(30),
  reconnectPeriodMs: z.int().min(100).max(300_000).default(2_000),
  /** Reconnect backoff ceiling (full jitter, capped); certificate problems wait this long at once. */
  reconnectCapMs: z.int().min(1_000).max(3_600_000).default(60_000),
  /** A connection up this long resets the reconnect backoff. */
  stablePeriodMs: z.int().min(1_000).max(3_600_000).default(60_000),
});

export const ForwarderSchema = z.strictObject({
  maxBatchReadings: z.int().min(1).max(10_000).default(500),
  maxBatchBytes: z
    .int()
    .min(4_096)
    .max(MAX_PAYLOAD_BYTES, `must be at most ${MAX_PAYLOAD_BYTES} (AWS IoT Core's 128 KB message limit)`)
    .default(120_000),
  idleFlushMs: z.int().min(10).max(60_000).default(1_000),
  /** Stop waiting for a PUBACK after this long and retry the batch (the cloud dedups replays). */
  ackTimeoutMs: z.int().min(1_000).max(600_000).default(30_000),
  /** Telemetry batches in flight at once: hides the PUBACK round trip when draining a backlog. */
  windowBatches: z.int().min(1).max(64).default(4),
  /**
   * Acknowledged readings are recorded as delivered at the latest this long after their PUBACK,
   * one transaction for all of them (a crash in between only means a resend the cloud dedups);
   * 0: at each PUBACK. Their rows are removed when nothing is waiting to be sent.
   */
  ackFlushMs: z.int().min(0).max(60_000).default(1_000),
});

/** The outbox (issue 4): disk cap and append batching. */
export const OutboxSchema = z.strictObject({
  /**
   * Most MB of live data in outbox.sqlite. Past it, old interval detail is thinned (energy
   * registers kept at 15-minute resolution), then the oldest readings dropped; both counted.
   */
  capMb: z.number().min(1).max(1_000_000).default(1_024),
  /**
   * Readings are gathered this long and committed in one transaction (one fsync): a poll round of
   * many meters costs one SD-card sync instead of one per meter. 0: commit each reading at once.
   */
  appendFlushMs: z.int().min(0).max(5_000).default(200),
});

const FaultThresholdOverrides = z.strictObject({
  nominalVoltageV: z.number().positive().optional(),
  nominalFrequencyHz: z.number().positive().optional(),
  sagStartPct: z.number().min(0).max(100).optional(),
  swellStartPct: z.number().min(100).max(200).optional(),
  interruptionStartPct: z.number().min(0).max(100).optional(),
  voltageHysteresisPct: z.number().min(0).max(20).optional(),
  frequencyBandHz: z.number().positive().max(10).optional(),
  frequencyHysteresisHz: z.number().min(0).max(5).optional(),
  minDurationMs: z.int().min(0).max(3_600_000).optional(),
  offlineAfterMs: z.int().min(1_000).max(86_400_000).optional(),
});

/** Local fault detection (issue 4): a preset (EN 50160 or ANSI C84.1) and overrides, globally and per meter. */
export const FaultsSchema = z.strictObject({
  preset: z.enum(["en50160-230v-50hz", "ansi-c84.1-120v-60hz"]).default("en50160-230v-50hz"),
  thresholds: FaultThresholdOverrides.default({}),
  /** meterId → overrides on top of the global ones (a 120 V meter on a 230 V site, a slower meter). */
  meters: z.record(z.string(), FaultThresholdOverrides).default({}),
});

/** How the gateway learns that its wall clock is right (issue 4, DESIGN "Time"). */
export const ClockSchema = z.strictObject({
  /**
   * The file whose existence means "synchronised": systemd-timesyncd touches
   * /run/systemd/timesync/synchronized after each sync. "auto" (default): that file when
   * /run/systemd/timesync exists (timesyncd runs), else trust a plausible wall clock.
   * null: trust a plausible wall clock.
   */
  syncedFile: z.string().min(1).nullable().default("auto"),
  syncCheckMs: z.int().min(100).max(600_000).default(5_000),
  /**
   * Unsynced readings are held in the outbox (not sent) until the sync re-stamps them, at most
   * this long after start; then they go as "unsynced" so a gateway that never syncs still delivers.
   */
  holdUnsyncedMaxMs: z.int().min(0).max(86_400_000).default(3_600_000),
});

/**
 * The technicians' status page (issue 6). Optional: without it the gateway serves no page.
 * The password is never in the config, only its scrypt hash, in a file of its own
 * (`edgemeter-gateway hash-password --out FILE`), so the config can be shown around.
 */
export const StatusSchema = z.strictObject({
  /** 0.0.0.0: the technician's phone or laptop is on the cabinet's LAN. */
  host: z.string().min(1).default("0.0.0.0"),
  port: z.int().min(0).max(65_535).default(8080),
  passwordHashFile: z.string().min(1),
  /** A session ends after this long without a request. */
  sessionTtlMinutes: z.int().min(1).max(10_080).default(720),
});

export const GatewayConfigSchema = z.strictObject({
  gatewayId: GatewayId,
  dataDir: z.string().min(1).default("./.edgemeter/gateway"),
  uplink: MqttUplinkSchema,
  forwarder: ForwarderSchema.default({
    maxBatchReadings: 500,
    maxBatchBytes: 120_000,
    idleFlushMs: 1_000,
    ackTimeoutMs: 30_000,
    windowBatches: 4,
    ackFlushMs: 1_000,
  }),
  buses: z.array(BusSchema).min(1, "configure at least one bus"),
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default("info") }).default({ level: "info" }),
  status: StatusSchema.optional(),
  outbox: OutboxSchema.default({ capMb: 1_024, appendFlushMs: 200 }),
  faults: FaultsSchema.default({ preset: "en50160-230v-50hz", thresholds: {}, meters: {} }),
  clock: ClockSchema.default({
    syncedFile: "auto",
    syncCheckMs: 5_000,
    holdUnsyncedMaxMs: 3_600_000,
  }),
});

export type RawGatewayConfig = z.output<typeof GatewayConfigSchema>;
export type MeterConfig = z.output<typeof MeterSchema>;
export type TcpBusConfig = z.output<typeof TcpBusSchema>;
export type RtuBusConfig = z.output<typeof RtuBusSchema>;
export type BusConfig = TcpBusConfig | RtuBusConfig;
export type ForwarderConfig = z.output<typeof ForwarderSchema>;
export type StatusConfig = z.output<typeof StatusSchema>;

export type MqttUplinkConfig = Omit<z.output<typeof MqttUplinkSchema>, "clientId"> & { clientId: string };

/** The validated configuration, every path absolute. */
export interface GatewayConfig extends Omit<RawGatewayConfig, "uplink"> {
  /** Absolute path of the file it came from. */
  configFile: string;
  uplink: MqttUplinkConfig;
  /**
   * Every meter profile the buses use, loaded and checked, keyed by the meters' (resolved)
   * `profile`: plain data, so the daemon plans its reads without the profile loader.
   */
  profiles: Readonly<Record<string, MeterProfile>>;
}
