/**
 * The SQL port under the store: the PostgreSQL dialect over either PGlite (embedded, one
 * process, one connection) or a PostgreSQL server (a pool). Everything above it (migrations,
 * `postgresStore.ts`) is written once and runs unchanged on both.
 */
export interface SqlResult<T> {
  rows: T[];
  /** Rows inserted, updated or deleted by the statement, when the driver reports it. */
  affectedRows?: number;
}

/** What a statement can run on: the client itself or an open transaction. */
export interface SqlExecutor {
  /**
   * Runs one parameterised statement ($1, $2, …).
   * @throws EdgemeterError `storage.unavailable` (retryable: connection lost, server shutting
   *   down, deadlock, serialisation failure) or `storage.query` (permanent: bad SQL, constraint).
   */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<SqlResult<T>>;
  /** Runs a script of several statements without parameters (migrations). Same errors as query. */
  exec(sql: string): Promise<void>;
  /**
   * `COPY … FROM STDIN` with `chunks` in COPY text format (tab-separated columns, `\N` for
   * null, each row ending in a newline); resolves to the number of rows copied. The chunks are
   * taken one at a time and sent as they come, so the server inserts the first while the
   * caller still produces the next (a generator). Only where the driver speaks the COPY
   * sub-protocol: the PostgreSQL server's transactions (PGlite has no STDIN; callers fall back
   * to INSERT when this is undefined). Same errors as query; an error thrown by `chunks`
   * aborts the COPY (CopyFail) and is rethrown.
   */
  copyFrom?(sql: string, chunks: Iterable<string>): Promise<number>;
}

export interface SqlClient extends SqlExecutor {
  /** "pglite" or "postgres": for logs and for the few places where the two differ. */
  readonly kind: "pglite" | "postgres";
  /**
   * Runs `fn` in one transaction on one connection: committed when `fn` resolves, rolled back
   * when it throws (the error is rethrown unchanged when it is already an EdgemeterError).
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
