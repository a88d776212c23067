import { describeError } from "@edgemeter/shared";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { buildApi } from "./api/index.js";
import { BillingScheduler } from "./billing/billingScheduler.js";
import { type EmbeddedBroker, startEmbeddedBroker } from "./broker/index.js";
import type { CloudConfig } from "./config/cloudConfig.js";
import { IngestService } from "./ingest/ingestService.js";
import { MessageGrouper } from "./ingest/messageGrouper.js";
import { MqttIngest } from "./ingest/mqttIngest.js";
import { SilenceSweeper } from "./ingest/silenceSweeper.js";
import { openSqlClient } from "./store/openSqlClient.js";
import { PostgresStore } from "./store/postgresStore.js";

/**
 * The composition root (CONVENTIONS §4): the only place that picks adapters and wires them.
 * Start order is store (migrated) → embedded broker → ingest → API; close runs in reverse, so
 * the ingest finishes and acknowledges the message in hand before the store closes.
 */
export interface RunningCloud {
  /** http://host:port the API listens on (the real port when the config said 0). */
  apiUrl: string;
  /** The embedded broker's port, when one runs in this process. */
  brokerPort: number | null;
  store: PostgresStore;
  ingest: IngestService | null;
  close(): Promise<void>;
}

/**
 * Opens the configured database (PostgreSQL when databaseUrl, else PGlite in dataDir) and
 * applies pending migrations. The caller closes the store.
 */
export async function openStore(config: CloudConfig, logger: Logger): Promise<PostgresStore> {
  const storeLogger = logger.child({ component: "store" });
  const sql = await openSqlClient(
    config.databaseUrl === undefined ? { dataDir: config.dataDir } : { databaseUrl: config.databaseUrl },
  );
  storeLogger.info(
    config.databaseUrl === undefined ? { database: "pglite", dataDir: config.dataDir } : { database: "postgres" },
    "database open",
  );
  const store = new PostgresStore({ sql, logger: storeLogger, defaultTimeZone: config.platform.defaultTimeZone });
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

export async function startCloud(config: CloudConfig, logger: Logger): Promise<RunningCloud> {
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (error) {
        logger.warn({ err: describeError(error) }, "error while closing");
      }
    }
    closers.length = 0;
  };

  try {
    const store = await openStore(config, logger);
    closers.push(() => store.close());

    let broker: EmbeddedBroker | null = null;
    if (config.broker !== undefined) {
      const { host, port, caFile, certFile, keyFile, crlFile } = config.broker;
      const started = await startEmbeddedBroker({
        host,
        port,
        caFile,
        certFile,
        keyFile,
        ...(crlFile === undefined ? {} : { crlFile }),
        logger,
      });
      broker = started;
      closers.push(() => started.close());
    }

    let ingest: IngestService | null = null;
    if (config.mqtt === undefined) {
      logger.warn("no mqtt section: this instance serves the API only and lands nothing");
    } else {
      const ingestService = new IngestService({ store, logger: logger.child({ component: "ingest" }) });
      const mqttIngest = new MqttIngest({
        url: config.mqtt.url,
        protocolVersion: config.mqtt.protocolVersion,
        clientId: config.mqtt.clientId,
        caFile: config.mqtt.caFile,
        certFile: config.mqtt.certFile,
        keyFile: config.mqtt.keyFile,
        shareGroup: config.mqtt.shareGroup,
        sessionExpirySec: config.mqtt.sessionExpirySec,
        connections: config.mqtt.connections,
        // Group commit: what arrives on the other connections while a group lands, lands together.
        handler: new MessageGrouper({ lander: ingestService }),
        logger: logger.child({ component: "mqttIngest" }),
      });
      await mqttIngest.start();
      closers.push(() => mqttIngest.stop());
      ingest = ingestService;
    }

    if (config.platform.silencePollIntervals > 0) {
      const sweeper = new SilenceSweeper({
        meterData: store,
        logger: logger.child({ component: "silenceSweeper" }),
        silenceMs: config.platform.silencePollIntervals * config.platform.pollIntervalMs,
      });
      sweeper.start();
      closers.push(() => sweeper.stop());
    }

    if (config.billing?.schedule.enabled === true) {
      // Every instance schedules; the run's advisory lock lets exactly one of them bill.
      const scheduler = new BillingScheduler({
        sql: store.sql,
        logger,
        zone: config.billing.timeZone,
        dayOfMonth: config.billing.schedule.dayOfMonth,
        hour: config.billing.schedule.hour,
      });
      scheduler.start();
      closers.push(() => scheduler.stop());
    }

    const api: FastifyInstance = await buildApi({
      store,
      meterData: store,
      rateLimitPerMinute: config.platform.rateLimitPerMinute,
      bodyLimitBytes: config.platform.bodyLimitBytes,
      logger,
      ...(ingest === null ? {} : { ingestStats: () => ingest.stats() }),
    });
    closers.push(() => api.close());
    await api.listen({ host: config.api.host, port: config.api.port });
    const address = api.server.address();
    const port = typeof address === "object" && address !== null ? address.port : config.api.port;
    const host = config.api.host.includes(":") ? `[${config.api.host}]` : config.api.host;

    return {
      apiUrl: `http://${host}:${port}`,
      brokerPort: broker?.port ?? null,
      store,
      ingest,
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
