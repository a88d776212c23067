import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { EdgemeterError } from "@edgemeter/shared";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { SqlClient, SqlExecutor, SqlResult } from "./sqlClient.js";
import { toStorageError } from "./sqlErrors.js";

/**
 * PGlite (PostgreSQL compiled to WebAssembly, in this process) as a SqlClient.
 *
 * PGlite has a single connection: a statement issued while another caller's transaction is
 * open would run inside that transaction. So every statement and every transaction here goes
 * through one queue, and a transaction's own statements go straight to its `tx`.
 * A data directory can be opened by one process at a time.
 */
export class PgliteSqlClient implements SqlClient {
  readonly kind = "pglite";
  readonly #db: PGlite;
  readonly #lockFile: string | null;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(db: PGlite, lockFile: string | null) {
    this.#db = db;
    this.#lockFile = lockFile;
  }

  /** Opens (creating it if needed) the database in `dataDir`, or an in-memory one when undefined. */
  static async open(dataDir?: string): Promise<PgliteSqlClient> {
    let lockFile: string | null = null;
    try {
      if (dataDir !== undefined) {
        mkdirSync(dataDir, { recursive: true });
        lockFile = lockDataDir(dataDir);
      }
      const db = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
      await db.waitReady;
      return new PgliteSqlClient(db, lockFile);
    } catch (error) {
      if (lockFile !== null) rmSync(lockFile, { force: true });
      throw toStorageError(error, `opening PGlite ${dataDir === undefined ? "in memory" : `in ${dataDir}`}`);
    }
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    // The queue only orders work; a failure belongs to its caller, not to the next in line.
    this.#queue = run.catch(() => undefined);
    return run;
  }

  query<T = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<SqlResult<T>> {
    return this.#exclusive(() => runQuery<T>(this.#db, sql, params));
  }

  exec(sql: string): Promise<void> {
    return this.#exclusive(() => runExec(this.#db, sql));
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      try {
        return await this.#db.transaction((tx) => fn(executorFor(tx)));
      } catch (error) {
        throw toStorageError(error, "transaction");
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#exclusive(() => this.#db.close());
    } finally {
      if (this.#lockFile !== null) rmSync(this.#lockFile, { force: true });
    }
  }
}

/**
 * PGlite does not guard its data directory: two processes opening it would both write and
 * corrupt it. A pid file refuses the second one (a stale file of a dead process is taken over).
 * @throws EdgemeterError storage.locked naming the process that holds the directory.
 */
function lockDataDir(dataDir: string): string {
  const lockFile = path.join(dataDir, "edgemeter.lock");
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: "wx" });
      return lockFile;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = Number(readFileSync(lockFile, "utf8").trim());
    if (Number.isInteger(holder) && holder > 0 && processAlive(holder)) {
      throw new EdgemeterError(
        "storage.locked",
        `${dataDir} is in use by process ${holder} (PGlite allows one process at a time: stop it, or use a PostgreSQL server)`,
        { context: { dataDir, pid: holder } },
      );
    }
    rmSync(lockFile, { force: true });
  }
  throw new EdgemeterError("storage.locked", `${dataDir}: could not take ${lockFile}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function executorFor(tx: Transaction): SqlExecutor {
  return {
    query: <T>(sql: string, params: readonly unknown[] = []) => runQuery<T>(tx, sql, params),
    exec: (sql: string) => runExec(tx, sql),
  };
}

async function runQuery<T>(
  target: PGlite | Transaction,
  sql: string,
  params: readonly unknown[],
): Promise<SqlResult<T>> {
  try {
    const result = await target.query<T>(sql, [...params]);
    return result.affectedRows === undefined
      ? { rows: result.rows }
      : { rows: result.rows, affectedRows: result.affectedRows };
  } catch (error) {
    throw toStorageError(error, "query");
  }
}

async function runExec(target: PGlite | Transaction, sql: string): Promise<void> {
  try {
    await target.exec(sql);
  } catch (error) {
    throw toStorageError(error, "script");
  }
}
