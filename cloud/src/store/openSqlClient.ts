import { PgliteSqlClient } from "./pgliteSqlClient.js";
import { PgSqlClient } from "./pgSqlClient.js";
import type { SqlClient } from "./sqlClient.js";

export interface OpenSqlClientOptions {
  /** A PostgreSQL server; wins over dataDir. (The config loader applies the DATABASE_URL override.) */
  databaseUrl?: string | undefined;
  /** PGlite data directory, used when there is no databaseUrl; in memory when both are absent. */
  dataDir?: string | undefined;
}

/** Picks the adapter: a PostgreSQL server when a URL is given, else embedded PGlite. */
export function openSqlClient(options: OpenSqlClientOptions): Promise<SqlClient> {
  if (options.databaseUrl !== undefined && options.databaseUrl !== "") {
    return PgSqlClient.open({ databaseUrl: options.databaseUrl });
  }
  return PgliteSqlClient.open(options.dataDir);
}
