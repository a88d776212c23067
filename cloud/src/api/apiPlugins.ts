import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import { apiKeyFromHeaders } from "./auth.js";

export interface RegisteredRoute {
  method: string;
  url: string;
}

/** Every route fastify registered, as its onRoute hook saw them (the OpenAPI test's reference). */
const REGISTERED_ROUTES = new WeakMap<FastifyInstance, RegisteredRoute[]>();

export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return REGISTERED_ROUTES.get(app) ?? [];
}

export interface ApiPluginOptions {
  /** Requests per minute per API key (per client address without one); absent: no limit. */
  rateLimitPerMinute?: number;
}

/**
 * Cross-cutting plugins, registered before any route: rate limiting (@fastify/rate-limit,
 * ahead of the auth hook so a flood of bad keys is limited too), the OpenAPI document at
 * `/openapi.json` (@fastify/swagger, built from the routes' schemas and summaries) and a docs
 * page at `/docs` (@fastify/swagger-ui, assets served from node_modules: no CDN). The docs
 * and the document are public: they describe routes and hold no data.
 */
export async function registerApiPlugins(app: FastifyInstance, options: ApiPluginOptions): Promise<void> {
  if (options.rateLimitPerMinute !== undefined) {
    await app.register(rateLimit, {
      max: options.rateLimitPerMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => {
        try {
          const key = apiKeyFromHeaders(request.headers);
          return key === null ? `ip:${request.ip}` : `key:${key}`;
        } catch {
          return `ip:${request.ip}`;
        }
      },
      allowList: (request) => request.url === "/health",
    });
  }
  const routes: RegisteredRoute[] = [];
  REGISTERED_ROUTES.set(app, routes);
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url });
    if (route.url === "/openapi.json" || route.url.startsWith("/docs")) {
      route.config = { ...(route.config ?? {}), public: true };
    }
  });
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "edgemeter cloud API",
        version: "1",
        description:
          "Meter data platform: /v1 routes (JSON, CSV with Accept: text/csv) and the routes of the AWS utility meter data analytics platform. Send an API key as x-api-key or Authorization: Bearer.",
      },
      components: {
        securitySchemes: { apiKey: { type: "apiKey", in: "header", name: "x-api-key" } },
      },
      security: [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}
