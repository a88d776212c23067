import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import type pino from "pino";
import type { MeterDataStore } from "../store/meterData.js";
import type { Store } from "../store/store.js";
import type { ApiDeps } from "./apiDeps.js";
import { apiError, toErrorResponse } from "./apiErrors.js";
import { registerApiPlugins } from "./apiPlugins.js";
import { registerApiKeyAuth } from "./auth.js";
import { registerAdminRoutes } from "./routes/adminRoutes.js";
import { registerBillingRoutes } from "./routes/billingRoutes.js";
import { registerGatewayRoutes } from "./routes/gatewayRoutes.js";
import { registerHealthRoutes } from "./routes/healthRoutes.js";
import { registerMeterRoutes } from "./routes/meterRoutes.js";
import { registerPlatformRoutes } from "./routes/platformRoutes.js";
import { registerSeedRoutes } from "./routes/seedRoutes.js";

export interface BuildApiOptions {
  store: Store;
  logger: pino.Logger;
  /** Counters of the ingest running in this process, served at `GET /v1/ingest/stats`. */
  ingestStats?: () => Record<string, number>;
  /** The current time (defaults to the system clock); readings' `to` defaults to it. */
  now?: () => Date;
  /** Registry writes, rollups, events, outages (PostgresStore): enables the platform and seed routes. */
  meterData?: MeterDataStore;
  /** Requests per minute per API key; absent: no limit. */
  rateLimitPerMinute?: number;
  /** Largest accepted request body (default 64 KiB): bigger ones get 413. */
  bodyLimitBytes?: number;
}

/**
 * The cloud's REST API (fastify 5). The caller listens (`app.listen({host, port})`) and closes.
 * Layout: one auth hook (auth.ts), one error shape (apiErrors.ts), one file per route group in
 * routes/; a new group (the AWS-compatible `/consumption`, `/anomaly`, `/forecast`, `/outage`)
 * is one more `registerXRoutes(app, deps)` line below and inherits auth and errors.
 */
export async function buildApi(options: BuildApiOptions): Promise<FastifyInstance> {
  // Typed as fastify's logger interface so the instance is the plain FastifyInstance route modules take.
  const logger: FastifyBaseLogger = options.logger.child({ component: "api" });
  const app = Fastify({
    loggerInstance: logger,
    // Request ids in logs let an operator match a client's complaint to its log lines.
    requestIdHeader: "x-request-id",
    bodyLimit: options.bodyLimitBytes ?? 65_536,
    // Errors fastify raises before routing (a malformed URL) get the same JSON shape as ours.
    frameworkErrors: (error, request, rawReply) => {
      const response = toErrorResponse(error);
      request.log.debug({ code: error.code }, "request refused before routing");
      // The hook's reply type is generic over route schemas that do not exist yet here.
      const reply = rawReply as FastifyReply;
      void reply.code(response.statusCode).type("application/json").send(response.body);
    },
  });

  const deps: ApiDeps = {
    store: options.store,
    now: options.now ?? (() => new Date()),
    ...(options.ingestStats === undefined ? {} : { ingestStats: options.ingestStats }),
    ...(options.meterData === undefined ? {} : { meterData: options.meterData }),
  };

  app.setErrorHandler(async (error, request, reply) => {
    const response = toErrorResponse(error);
    if (response.serverFault) request.log.error({ err: error }, "request failed");
    else request.log.debug({ code: response.body.error.code, message: response.body.error.message }, "request refused");
    return reply.code(response.statusCode).type("application/json").send(response.body);
  });

  app.setNotFoundHandler(async (request) => {
    throw apiError("api.notFound", `no route ${request.method} ${request.url.split("?")[0] ?? ""}`);
  });

  await registerApiPlugins(
    app,
    options.rateLimitPerMinute === undefined ? {} : { rateLimitPerMinute: options.rateLimitPerMinute },
  );
  registerApiKeyAuth(app, options.store);
  registerHealthRoutes(app);
  registerMeterRoutes(app, deps);
  registerGatewayRoutes(app, deps);
  registerAdminRoutes(app, deps);
  registerBillingRoutes(app, deps);
  if (options.meterData !== undefined) {
    registerPlatformRoutes(app, options.meterData, deps);
    registerSeedRoutes(app, options.meterData, deps);
  }
  return app;
}
