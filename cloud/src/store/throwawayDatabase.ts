/**
 * Test-only: a fresh PostgreSQL database per suite on the test server, dropped afterwards,
 * so suites never see each other's rows and can run in parallel. Nothing in a product path
 * imports this.
 */
import { randomBytes } from "node:crypto";
import { POSTGRES_URL, probeTcp, requireService } from "@edgemeter/shared/testing";
import pg from "pg";

export interface ThrowawayDatabase {
  url: string;
  drop(): Promise<void>;
}

/** True when the test PostgreSQL answers; prints a skip reason (or throws under CI=true) when not. */
export async function postgresAvailable(): Promise<boolean> {
  const url = new URL(POSTGRES_URL);
  const up = await probeTcp(url.hostname, Number(url.port || 5432));
  return requireService("PostgreSQL", up, `expected at ${url.host}; set EDGEMETER_TEST_DATABASE_URL`);
}

export async function createThrowawayDatabase(): Promise<ThrowawayDatabase> {
  const name = `edgemeter_t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
      try {
        // FORCE: a pool that a failed test left open must not keep the database alive.
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
