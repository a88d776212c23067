#!/usr/bin/env node
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { describeError, EdgemeterError, isEdgemeterError } from "@edgemeter/shared";
import pino, { type Logger } from "pino";
import { hashApiKey } from "./api/index.js";
import { BILLING_COMMANDS, BILLING_USAGE, billingCommand } from "./billing/billingCommands.js";
import { tariffBillCommand } from "./billing/tariffCommand.js";
import { type CloudConfig, loadCloudConfig } from "./config/cloudConfig.js";
import { openStore, startCloud } from "./main.js";

const USAGE = `usage: edgemeter-cloud <command> [options]

commands:
  serve  --config FILE                 migrate, start the embedded broker (if configured), the ingest and the API
  migrate --config FILE                apply pending database migrations and exit
  apikey create --name NAME [--scope read|admin]... --config FILE
                                       create an API key; it is printed once, only its SHA-256 is stored
  apikey revoke --id N --config FILE   revoke an API key
  apikey list --config FILE            list API keys (never the keys themselves)
  tariff bill --tariff URDB.json --hourly KWH.csv [--calendar sam | --zone ZONE --year YYYY]
                                       bill a year of hourly kWh under a URDB tariff; prints one JSON line
${BILLING_USAGE}

options:
  --config FILE   cloud.yaml (default ./cloud.yaml); env DATABASE_URL overrides its databaseUrl
  -h, --help      this text

exit codes: 0 ok, 1 failure at run time, 2 bad usage or configuration`;

/** Exit code 2: the operator must fix the command line or the config; retrying will not help. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    process.stderr.write(`${describeError(error)}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals.length === 0) {
    process.stdout.write(`${USAGE}\n`);
    return positionals.length === 0 && values.help !== true ? 2 : 0;
  }
  const command = positionals.join(" ");
  if (command === "tariff bill") {
    // A pure calculation: needs no config, no database.
    try {
      process.stdout.write(`${tariffBillCommand(values)}\n`);
      return 0;
    } catch (error) {
      process.stderr.write(`edgemeter-cloud: ${describeError(error)}\n`);
      return isEdgemeterError(error) && error.family === "config" ? 2 : 1;
    }
  }
  try {
    const config = loadCloudConfig(values.config ?? "cloud.yaml");
    // stdout carries only what scripts read (the API url, a new key); logs go to stderr.
    const logger = pino({ level: config.log.level, base: { service: "edgemeter-cloud" } }, pino.destination(2));
    if (BILLING_COMMANDS.includes(command)) {
      const store = await openStore(config, logger);
      try {
        return await billingCommand(
          command,
          values,
          store.sql,
          config.billing?.timeZone ?? config.platform.defaultTimeZone,
          logger,
        );
      } finally {
        await store.close();
      }
    }
    switch (command) {
      case "serve":
        return await serve(config, logger);
      case "migrate": {
        const store = await openStore(config, logger);
        await store.close();
        process.stdout.write("migrations: up to date\n");
        return 0;
      }
      case "apikey create":
        return await createApiKey(config, logger, values.name, values.scope ?? ["read"]);
      case "apikey revoke":
        return await revokeApiKey(config, logger, values.id);
      case "apikey list":
        return await listApiKeys(config, logger);
      default:
        throw new UsageError(`unknown command: ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\n\n${USAGE}\n`);
      return 2;
    }
    process.stderr.write(`edgemeter-cloud: ${describeError(error)}\n`);
    return isEdgemeterError(error) && error.family === "config" ? 2 : 1;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: "string", short: "c" },
      name: { type: "string" },
      scope: { type: "string", multiple: true },
      id: { type: "string" },
      tariff: { type: "string" },
      hourly: { type: "string" },
      calendar: { type: "string" },
      zone: { type: "string" },
      year: { type: "string" },
      period: { type: "string" },
      "dry-run": { type: "boolean" },
      bill: { type: "string" },
      reason: { type: "string" },
      actor: { type: "string" },
      meter: { type: "string" },
      from: { type: "string" },
      to: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

async function serve(config: CloudConfig, logger: Logger): Promise<number> {
  const cloud = await startCloud(config, logger);
  process.stdout.write(`api: ${cloud.apiUrl}\n`);
  if (cloud.brokerPort !== null) process.stdout.write(`broker: mqtts://${config.broker?.host}:${cloud.brokerPort}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "stopping");
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  await cloud.close();
  logger.info("stopped");
  return 0;
}

const SCOPES = ["read", "admin"] as const;

async function createApiKey(
  config: CloudConfig,
  logger: Logger,
  name: string | undefined,
  scopes: string[],
): Promise<number> {
  if (name === undefined || name.trim() === "") throw new UsageError("apikey create needs --name NAME");
  const bad = scopes.filter((scope) => !(SCOPES as readonly string[]).includes(scope));
  if (bad.length > 0) throw new UsageError(`--scope must be read or admin, not ${bad.join(", ")}`);
  // 32 random bytes: unguessable; the em_ prefix lets secret scanners and humans recognise a key.
  const key = `em_${randomBytes(32).toString("base64url")}`;
  const store = await openStore(config, logger);
  try {
    const row = await store.createApiKey(name.trim(), hashApiKey(key), [...new Set(scopes)] as ("read" | "admin")[]);
    process.stdout.write(
      `api key: ${key}\n(shown once: only its SHA-256 is stored)\nid: ${row.id}  name: ${row.name}  scopes: ${row.scopes.join(",")}\n`,
    );
  } finally {
    await store.close();
  }
  return 0;
}

async function revokeApiKey(config: CloudConfig, logger: Logger, idText: string | undefined): Promise<number> {
  const id = Number(idText);
  if (idText === undefined || !Number.isSafeInteger(id) || id <= 0) {
    throw new UsageError("apikey revoke needs --id N (a positive integer, see apikey list)");
  }
  const store = await openStore(config, logger);
  try {
    await store.revokeApiKey(id);
    process.stdout.write(`revoked api key ${id}\n`);
    return 0;
  } catch (error) {
    if (error instanceof EdgemeterError && error.code === "storage.notFound") {
      process.stderr.write(`edgemeter-cloud: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    await store.close();
  }
}

async function listApiKeys(config: CloudConfig, logger: Logger): Promise<number> {
  const store = await openStore(config, logger);
  try {
    for (const key of await store.listApiKeys()) {
      const state = key.revokedAt === null ? "active" : `revoked ${key.revokedAt}`;
      process.stdout.write(`${key.id}\t${key.name}\t${key.scopes.join(",")}\tcreated ${key.createdAt}\t${state}\n`);
    }
  } finally {
    await store.close();
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
