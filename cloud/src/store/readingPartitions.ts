import { EdgemeterError } from "@edgemeter/shared";
import type { Logger } from "pino";
import type { SqlClient } from "./sqlClient.js";
import { sqlStateOf } from "./sqlErrors.js";

/** A calendar month in UTC, the unit of partitioning of `readings`. */
export interface UtcMonth {
  year: number;
  /** 1-12 */
  month: number;
}

export function utcMonthOf(time: Date): UtcMonth {
  return { year: time.getUTCFullYear(), month: time.getUTCMonth() + 1 };
}

/** `readings_y2026m11`: sortable, and a valid identifier without quoting. */
export function partitionName({ year, month }: UtcMonth): string {
  return `readings_y${String(year).padStart(4, "0")}m${String(month).padStart(2, "0")}`;
}

function monthStartIso({ year, month }: UtcMonth): string {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, 1);
  return date.toISOString();
}

/**
 * Creates the month partitions of `readings` that a batch needs, before the batch's own
 * transaction, so that transaction never takes the parent table's exclusive DDL lock.
 * Known partitions are remembered, so the catalog is asked about a month once per process.
 */
export class ReadingPartitions {
  readonly #sql: SqlClient;
  readonly #logger: Logger;
  readonly #known = new Set<string>();

  constructor(sql: SqlClient, logger: Logger) {
    this.#sql = sql;
    this.#logger = logger;
  }

  async ensure(times: Iterable<Date>): Promise<void> {
    const missing = new Map<string, UtcMonth>();
    for (const time of times) {
      const month = utcMonthOf(time);
      const name = partitionName(month);
      if (!this.#known.has(name)) missing.set(name, month);
    }
    for (const [name, month] of missing) await this.#create(name, month);
  }

  async #create(name: string, month: UtcMonth): Promise<void> {
    const { rows } = await this.#sql.query<{ exists: boolean }>("SELECT to_regclass($1) IS NOT NULL AS exists", [name]);
    if (rows[0]?.exists === true) {
      this.#known.add(name);
      return;
    }
    const next = month.month === 12 ? { year: month.year + 1, month: 1 } : { year: month.year, month: month.month + 1 };
    // DDL takes no parameters; the name and bounds are built from integers above, never from input text.
    const ddl = `CREATE TABLE IF NOT EXISTS ${name} PARTITION OF readings
      FOR VALUES FROM ('${monthStartIso(month)}') TO ('${monthStartIso(next)}')`;
    try {
      await this.#sql.transaction(async (tx) => {
        // Two instances creating the same partition at once would collide in the catalog even with
        // IF NOT EXISTS; the lock makes the second one wait and then find it.
        await tx.query("SELECT pg_advisory_xact_lock($1)", [PARTITION_LOCK_KEY]);
        await tx.exec(ddl);
      });
      this.#logger.info({ partition: name }, "created readings partition");
      this.#known.add(name);
    } catch (error) {
      // 23514: the DEFAULT partition already holds rows of this month (landed while creation
      // failed earlier). Those rows would violate the new partition's bounds; keep using DEFAULT
      // for this month rather than refusing readings, and say so once.
      if (sqlStateOf(error) === "23514") {
        this.#logger.warn({ partition: name }, "readings of this month are in readings_default; not partitioning it");
        this.#known.add(name);
        return;
      }
      throw error instanceof EdgemeterError ? error : new EdgemeterError("storage.partition", String(error));
    }
  }
}

const PARTITION_LOCK_KEY = 7_264_351_002;
