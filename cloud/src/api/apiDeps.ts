import type { MeterDataStore } from "../store/meterData.js";
import type { Store } from "../store/store.js";

/** What route groups get: the storage port, a clock, and optional ingest counters. */
export interface ApiDeps {
  store: Store;
  /** The current time; tests pass a fixed one. */
  now: () => Date;
  ingestStats?: () => Record<string, number>;
  /** Registry writes, rollups, events and outages (PostgresStore); the platform routes need it. */
  meterData?: MeterDataStore;
}
