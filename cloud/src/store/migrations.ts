import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { EdgemeterError } from "@edgemeter/shared";
import type { Logger } from "pino";
import type { SqlClient } from "./sqlClient.js";

/**
 * `cloud/migrations/`, found relative to this module so it resolves the same from
 * `src/store/` (vitest) and `dist/store/` (the built CLI).
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL("../../migrations/", import.meta.url));

const MIGRATION_FILE = /^(\d{4})_[a-z0-9_]+\.sql$/;

/**
 * Any constant shared by every instance: `pg_advisory_xact_lock` on it makes instances that
 * start together apply migrations one after the other; the later ones then find nothing to do.
 */
const MIGRATION_LOCK_KEY = 7_264_351_001;

export interface Migration {
  name: string;
  sql: string;
  sha256: string;
}

/** The migration files of `dir`, in order. Throws config.migrations for a gap or a stray name. */
export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const names = readdirSync(dir)
    .filter((name) => name.endsWith(".sql"))
    .sort();
  return names.map((name, index) => {
    const match = MIGRATION_FILE.exec(name);
    if (match === null || Number(match[1]) !== index + 1) {
      throw new EdgemeterError(
        "storage.migrations",
        `${dir}: ${name}: migration files must be numbered 0001_name.sql, 0002_name.sql, … without gaps`,
      );
    }
    const sql = readFileSync(`${dir}/${name}`, "utf8");
    return { name, sql, sha256: createHash("sha256").update(sql).digest("hex") };
  });
}

/**
 * Applies the pending migrations in one transaction under an advisory lock, recording each in
 * `schema_migrations`. Returns the names it applied (empty when the schema is current).
 * @throws EdgemeterError storage.migrations when an applied migration's file was edited since,
 *   storage.* from the database (nothing is applied then: the transaction rolls back).
 */
export async function applyMigrations(sql: SqlClient, logger: Logger, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = loadMigrations(dir);
  return sql.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name        text PRIMARY KEY,
      sha256      text NOT NULL,
      applied_at  timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await tx.query<{ name: string; sha256: string }>("SELECT name, sha256 FROM schema_migrations");
    const applied = new Map(rows.map((row) => [row.name, row.sha256]));
    const done: string[] = [];
    for (const migration of migrations) {
      const appliedSha = applied.get(migration.name);
      if (appliedSha !== undefined) {
        if (appliedSha !== migration.sha256) {
          throw new EdgemeterError(
            "storage.migrations",
            `${dir}/${migration.name}: changed after it was applied (add a new migration instead)`,
          );
        }
        continue;
      }
      logger.info({ migration: migration.name }, "applying migration");
      await tx.exec(migration.sql);
      await tx.query("INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)", [
        migration.name,
        migration.sha256,
      ]);
      done.push(migration.name);
    }
    return done;
  });
}
