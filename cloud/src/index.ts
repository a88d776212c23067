/** @edgemeter/cloud: the store, ingest, config and composition root, for tests and tools. */

export { type BuildApiOptions, buildApi, hashApiKey } from "./api/index.js";
export * as billing from "./billing/index.js";
export { type EmbeddedBroker, type EmbeddedBrokerOptions, startEmbeddedBroker } from "./broker/index.js";
export { type CloudConfig, defaultClientId, loadCloudConfig, parseCloudConfig } from "./config/cloudConfig.js";
export {
  checkMessage,
  type IngestOutcome,
  IngestService,
  type IngestServiceOptions,
  type IngestStats,
  type LandedOutcome,
  type MessageHandler,
} from "./ingest/ingestService.js";
export { MqttIngest, type MqttIngestOptions } from "./ingest/mqttIngest.js";
export { openStore, type RunningCloud, startCloud } from "./main.js";
export { applyMigrations, loadMigrations, MIGRATIONS_DIR, type Migration } from "./store/migrations.js";
export { type OpenSqlClientOptions, openSqlClient } from "./store/openSqlClient.js";
export { PgliteSqlClient } from "./store/pgliteSqlClient.js";
export { PgSqlClient, type PgSqlClientOptions } from "./store/pgSqlClient.js";
export { PostgresStore, type PostgresStoreOptions } from "./store/postgresStore.js";
export { partitionName, ReadingPartitions, type UtcMonth, utcMonthOf } from "./store/readingPartitions.js";
export type { SqlClient, SqlExecutor, SqlResult } from "./store/sqlClient.js";
export { isRetryableSqlError, toStorageError } from "./store/sqlErrors.js";
export type * from "./store/store.js";
