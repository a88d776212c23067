import { once } from "node:events";
import { finished } from "node:stream/promises";
import { describeError } from "@edgemeter/shared";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import type { SqlClient, SqlExecutor, SqlResult } from "./sqlClient.js";
import { toStorageError } from "./sqlErrors.js";

export interface PgSqlClientOptions {
  /** postgres://user:password@host:port/database */
  databaseUrl: string;
  /** Pool size; the store needs few connections because ingest lands one batch at a time. */
  maxConnections?: number;
  /** How long to wait for a pooled connection before failing (retryable). */
  connectTimeoutMs?: number;
}

/** A PostgreSQL server, through a node-postgres pool, as a SqlClient. */
export class PgSqlClient implements SqlClient {
  readonly kind = "postgres";
  readonly #pool: pg.Pool;
  #closed = false;

  constructor(options: PgSqlClientOptions) {
    this.#pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    });
    // An idle client losing its connection (server restart) emits on the pool; without a
    // listener node would crash the process. The next query gets a fresh connection.
    this.#pool.on("error", () => undefined);
  }

  /** Opens the pool and checks that the server answers. */
  static async open(options: PgSqlClientOptions): Promise<PgSqlClient> {
    const client = new PgSqlClient(options);
    try {
      await client.query("SELECT 1");
    } catch (error) {
      await client.close();
      throw error;
    }
    return client;
  }

  query<T = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<SqlResult<T>> {
    return runQuery<T>(this.#pool, sql, params);
  }

  exec(sql: string): Promise<void> {
    return runExec(this.#pool, sql);
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    let connection: pg.PoolClient;
    try {
      connection = await this.#pool.connect();
    } catch (error) {
      throw toStorageError(error, "connecting");
    }
    const tx: SqlExecutor = {
      query: <R>(sql: string, params: readonly unknown[] = []) => runQuery<R>(connection, sql, params),
      exec: (sql: string) => runExec(connection, sql),
      copyFrom: (sql: string, chunks: Iterable<string>) => runCopyFrom(connection, sql, chunks),
    };
    let broken = false;
    try {
      await connection.query("BEGIN");
      const result = await fn(tx);
      await connection.query("COMMIT");
      return result;
    } catch (error) {
      try {
        await connection.query("ROLLBACK");
      } catch {
        // The connection is gone or unusable: do not hand it back to the pool.
        broken = true;
      }
      throw toStorageError(error, "transaction");
    } finally {
      connection.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }
}

async function runQuery<T>(
  target: pg.Pool | pg.PoolClient,
  sql: string,
  params: readonly unknown[],
): Promise<SqlResult<T>> {
  try {
    const result = await target.query(sql, [...params]);
    const rows = result.rows as T[];
    return result.rowCount === null ? { rows } : { rows, affectedRows: result.rowCount };
  } catch (error) {
    throw toStorageError(error, "query");
  }
}

async function runExec(target: pg.Pool | pg.PoolClient, sql: string): Promise<void> {
  try {
    // Without parameters pg uses the simple query protocol, which accepts several statements.
    await target.query(sql);
  } catch (error) {
    throw toStorageError(error, "script");
  }
}

/**
 * `COPY … FROM STDIN` through pg-copy-streams: each chunk is written to the COPY stream as soon
 * as it is produced, so the server parses and inserts it while the next one is being produced.
 * A chunk producer that throws destroys the stream, which sends CopyFail (the server rolls the
 * COPY back and the error is reported as the producer's).
 */
async function runCopyFrom(target: pg.PoolClient, sql: string, chunks: Iterable<string>): Promise<number> {
  const stream = target.query(copyFrom(sql));
  try {
    try {
      for (const chunk of chunks) {
        if (chunk.length > 0 && !stream.write(chunk, "utf8")) await once(stream, "drain");
      }
    } catch (error) {
      stream.destroy(error instanceof Error ? error : new Error(describeError(error)));
      await finished(stream).catch(() => {});
      throw error;
    }
    stream.end();
    await finished(stream);
    return stream.rowCount;
  } catch (error) {
    throw toStorageError(error, "copy");
  }
}
