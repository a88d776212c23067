import { tempDir } from "@edgemeter/shared/testing";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { loadMigrations } from "./migrations.js";
import { PgliteSqlClient } from "./pgliteSqlClient.js";
import { PgSqlClient } from "./pgSqlClient.js";
import { PostgresStore } from "./postgresStore.js";
import { runStoreContract } from "./storeContract.js";
import { createThrowawayDatabase, postgresAvailable } from "./throwawayDatabase.js";

const logger = pino({ level: "silent" });

runStoreContract("PGlite (temp dir)", async () => {
  const dir = tempDir("store");
  const sql = await PgliteSqlClient.open(dir.dir);
  const store = new PostgresStore({ sql, logger });
  return {
    store,
    async dispose() {
      await store.close();
      dir.remove();
    },
  };
});

runStoreContract("PostgreSQL server", async () => {
  if (!(await postgresAvailable())) return null;
  const database = await createThrowawayDatabase();
  const store = new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: database.url }), logger });
  return {
    store,
    async dispose() {
      await store.close();
      await database.drop();
    },
  };
});

describe("PostgreSQL specifics", () => {
  it("several instances starting at once apply each migration once", async (context) => {
    if (!(await postgresAvailable())) context.skip();
    const database = await createThrowawayDatabase();
    const stores = await Promise.all(
      Array.from(
        { length: 4 },
        async () => new PostgresStore({ sql: await PgSqlClient.open({ databaseUrl: database.url }), logger }),
      ),
    );
    try {
      await Promise.all(stores.map((store) => store.migrate()));
      const { rows } = await (stores[0] as PostgresStore).sql.query<{ n: unknown }>(
        "SELECT count(*) AS n FROM schema_migrations",
      );
      expect(Number(rows[0]?.n)).toBe(loadMigrations().length);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
      await database.drop();
    }
  });

  it("reports an unreachable server as a retryable storage error", async () => {
    const error = await PgSqlClient.open({
      databaseUrl: "postgres://postgres@127.0.0.1:1/none",
      connectTimeoutMs: 2000,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "storage.unavailable", retryable: true });
  });

  it("keeps the data of a PGlite directory across a reopen", async () => {
    const dir = tempDir("reopen");
    try {
      const first = new PostgresStore({ sql: await PgliteSqlClient.open(dir.dir), logger });
      await first.migrate();
      await first.createApiKey("persisted", "c".repeat(64), ["read"]);
      await first.close();
      const second = new PostgresStore({ sql: await PgliteSqlClient.open(dir.dir), logger });
      await second.migrate();
      expect((await second.findApiKeyByHash("c".repeat(64)))?.name).toBe("persisted");
      await second.close();
    } finally {
      dir.remove();
    }
  });
});
