import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import path from "node:path";
import { describeError, EdgemeterError, formatInputIssues, INGEST_SHARE_GROUP, toInputIssues } from "@edgemeter/shared";
import { parseDocument } from "yaml";
import { z } from "zod";

/**
 * `cloud.yaml` (JSON is accepted too: it is YAML). Relative paths are resolved against the
 * config file's folder, so a config works from any working directory. Every field is checked
 * strictly: an unknown key is a typo, not something to ignore.
 */
const TlsFiles = {
  caFile: z.string().min(1).optional(),
  certFile: z.string().min(1).optional(),
  keyFile: z.string().min(1).optional(),
};

const Port = z.number().int().min(0).max(65_535);

const MqttSection = z
  .strictObject({
    url: z
      .string()
      .regex(/^(mqtts?|tls|ssl|tcp):\/\/[^/]+$/, "must look like mqtts://host:port (or mqtt:// for tests)"),
    /** 5 for Mosquitto and AWS IoT Core; 4 (MQTT 3.1.1) for the embedded Aedes broker. */
    protocolVersion: z.union([z.literal(4), z.literal(5)], { error: "must be 4 (MQTT 3.1.1) or 5" }).default(5),
    ...TlsFiles,
    /**
     * Stable across restarts (the broker keeps this session's queue) and unique per instance
     * (two instances with one id would keep disconnecting each other).
     */
    clientId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,128}$/)
      .optional(),
    /** MQTT 5 shared-subscription group: instances of one deployment share the messages. */
    shareGroup: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/)
      .default(INGEST_SHARE_GROUP),
    /** How long the broker keeps this instance's queue while it is down (MQTT 5 only). */
    sessionExpirySec: z.number().int().min(0).max(4_294_967_295).default(86_400),
    /**
     * Subscriber connections per instance in the shared group (MQTT 5 only): mqtt.js lands one
     * message per connection at a time (acks after commit), so this many are in flight.
     */
    connections: z.number().int().min(1).max(64).default(1),
  })
  .superRefine((mqtt, context) => {
    const tls = !mqtt.url.startsWith("mqtt://") && !mqtt.url.startsWith("tcp://");
    for (const key of ["caFile", "certFile", "keyFile"] as const) {
      if (tls && mqtt[key] === undefined) {
        context.addIssue({
          code: "custom",
          path: [key],
          message: "required for a TLS url (the cloud connects with mTLS)",
        });
      }
    }
    if (mqtt.connections > 1 && mqtt.protocolVersion !== 5) {
      context.addIssue({
        code: "custom",
        path: ["connections"],
        message: "several connections need protocolVersion 5 (a shared subscription)",
      });
    }
  });

const BrokerSection = z.strictObject({
  host: z.string().min(1).default("127.0.0.1"),
  port: Port.default(8883),
  caFile: z.string().min(1),
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  /** PEM CRL of the CA: revoked gateway certificates fail the TLS handshake. */
  crlFile: z.string().min(1).optional(),
});

/** Meter data platform (issue 5): rollup days, outage detection, API limits. */
const PlatformSection = z.strictObject({
  /** IANA zone of daily rollups for meters the registry gives none. */
  defaultTimeZone: z
    .string()
    .refine((zone) => {
      try {
        new Intl.DateTimeFormat("en-US", { timeZone: zone });
        return true;
      } catch {
        return false;
      }
    }, "must be an IANA time zone such as Europe/Berlin")
    .default("UTC"),
  /** The meters' reading interval; silence is counted in these. */
  pollIntervalMs: z.number().int().min(1000).default(900_000),
  /** A meter without readings for longer than this many poll intervals is in outage (0: off). */
  silencePollIntervals: z.number().int().min(0).default(4),
  /** Requests per minute per API key (or client address without one). */
  rateLimitPerMinute: z.number().int().min(1).default(600),
  /** Largest accepted request body. */
  bodyLimitBytes: z.number().int().min(1024).default(65_536),
});

/** Monthly billing (issue 7, cloud/src/billing/README.md). Absent: no scheduled bill run. */
const BillingSection = z.strictObject({
  /** The utility's IANA zone: the schedule's clock and the periods of meters without their own zone. */
  timeZone: z.string().refine((zone) => {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: zone });
      return true;
    } catch {
      return false;
    }
  }, "must be an IANA time zone such as Europe/Berlin"),
  /** Run the previous month's bills on this local day and hour (every instance schedules; one bills). */
  schedule: z
    .strictObject({
      enabled: z.boolean().default(true),
      dayOfMonth: z.number().int().min(1).max(28).default(1),
      hour: z.number().int().min(0).max(23).default(8),
    })
    .default({ enabled: true, dayOfMonth: 1, hour: 8 }),
});

const CloudConfigSchema = z
  .strictObject({
    dataDir: z.string().min(1).default("./.edgemeter/cloud"),
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL")
      .optional(),
    /** Absent: no ingest (an API-only instance). */
    mqtt: MqttSection.optional(),
    /** Present: run the embedded Aedes broker in this process (single site, demo). */
    broker: BrokerSection.optional(),
    api: z.strictObject({ host: z.string().min(1).default("127.0.0.1"), port: Port.default(8081) }).default({
      host: "127.0.0.1",
      port: 8081,
    }),
    log: z
      .strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info") })
      .default({ level: "info" }),
    billing: BillingSection.optional(),
    platform: PlatformSection.default({
      defaultTimeZone: "UTC",
      pollIntervalMs: 900_000,
      silencePollIntervals: 4,
      rateLimitPerMinute: 600,
      bodyLimitBytes: 65_536,
    }),
  })
  .superRefine((config, context) => {
    // Aedes speaks only MQTT 3.1.1 and refuses an MQTT 5 CONNECT: catch the mismatch here, not at start.
    const { broker, mqtt } = config;
    if (broker !== undefined && mqtt !== undefined && mqtt.protocolVersion === 5 && pointsAt(mqtt.url, broker.port)) {
      context.addIssue({
        code: "custom",
        path: ["mqtt", "protocolVersion"],
        message: "must be 4 to connect to the embedded broker (it speaks MQTT 3.1.1 only)",
      });
    }
  });

function pointsAt(url: string, port: number): boolean {
  try {
    const parsed = new URL(url);
    const local = ["127.0.0.1", "localhost", "::1", "[::1]"].includes(parsed.hostname);
    return local && Number(parsed.port || (parsed.protocol === "mqtt:" ? 1883 : 8883)) === port;
  } catch {
    return false;
  }
}

export interface CloudConfig {
  /** The file it was read from (absolute). */
  file: string;
  /** Absolute PGlite data directory; unused when databaseUrl is set. */
  dataDir: string;
  databaseUrl?: string;
  mqtt?: {
    url: string;
    protocolVersion: 4 | 5;
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    clientId: string;
    shareGroup: string;
    sessionExpirySec: number;
    connections: number;
  };
  broker?: { host: string; port: number; caFile: string; certFile: string; keyFile: string; crlFile?: string };
  api: { host: string; port: number };
  log: { level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent" };
  platform: {
    defaultTimeZone: string;
    pollIntervalMs: number;
    silencePollIntervals: number;
    rateLimitPerMinute: number;
    bodyLimitBytes: number;
  };
  /** Monthly billing (issue 7); absent: no scheduled bill run. */
  billing?: { timeZone: string; schedule: { enabled: boolean; dayOfMonth: number; hour: number } };
}

/** The default MQTT client id: stable on one host, distinct between hosts. */
export function defaultClientId(): string {
  return `cloud-ingest-${hostname().replace(/[^A-Za-z0-9._-]/g, "-")}`.slice(0, 128);
}

/**
 * Reads and checks a cloud config file. `env.DATABASE_URL`, when set, overrides databaseUrl.
 * @throws EdgemeterError config.invalid whose message lists every problem as `file: path: message`.
 */
export function loadCloudConfig(file: string, env: NodeJS.ProcessEnv = process.env): CloudConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, "utf8");
  } catch (error) {
    throw new EdgemeterError("config.invalid", `${file}: cannot read: ${describeError(error)}`, { cause: error });
  }
  return parseCloudConfig(text, absolute, env);
}

/** Like loadCloudConfig, from text; `file` names it in messages and anchors relative paths. */
export function parseCloudConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): CloudConfig {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    const lines = document.errors.map((error) => {
      const line = error.linePos?.[0];
      return `${file}: ${line === undefined ? "(yaml)" : `line ${line.line}`}: ${error.message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "")}`;
    });
    throw new EdgemeterError("config.invalid", lines.join("\n"));
  }
  const raw: unknown = document.toJS() ?? {};
  const result = CloudConfigSchema.safeParse(raw);
  if (!result.success) {
    const issues = toInputIssues(file, result.error.issues);
    throw new EdgemeterError("config.invalid", formatInputIssues(issues), { context: { issues } });
  }
  const parsed = result.data;
  const base = path.dirname(path.resolve(file));
  const resolve = (p: string) => path.resolve(base, p);
  const databaseUrl = env.DATABASE_URL !== undefined && env.DATABASE_URL !== "" ? env.DATABASE_URL : parsed.databaseUrl;

  const config: CloudConfig = {
    file: path.resolve(file),
    dataDir: resolve(parsed.dataDir),
    api: parsed.api,
    log: parsed.log,
    platform: parsed.platform,
  };
  if (databaseUrl !== undefined) config.databaseUrl = databaseUrl;
  if (parsed.billing !== undefined) config.billing = parsed.billing;
  if (parsed.mqtt !== undefined) {
    const { caFile, certFile, keyFile, clientId, ...rest } = parsed.mqtt;
    config.mqtt = {
      ...rest,
      clientId: clientId ?? defaultClientId(),
      ...(caFile === undefined ? {} : { caFile: resolve(caFile) }),
      ...(certFile === undefined ? {} : { certFile: resolve(certFile) }),
      ...(keyFile === undefined ? {} : { keyFile: resolve(keyFile) }),
    };
  }
  if (parsed.broker !== undefined) {
    const broker = parsed.broker;
    config.broker = {
      host: broker.host,
      port: broker.port,
      caFile: resolve(broker.caFile),
      certFile: resolve(broker.certFile),
      keyFile: resolve(broker.keyFile),
      ...(broker.crlFile === undefined ? {} : { crlFile: resolve(broker.crlFile) }),
    };
  }
  return config;
}
