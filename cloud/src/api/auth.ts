import { createHash } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ApiKeyRow, Store } from "../store/store.js";
import { apiError } from "./apiErrors.js";

export type ApiScope = ApiKeyRow["scopes"][number];

declare module "fastify" {
  interface FastifyContextConfig {
    /** Reachable without an API key (only `GET /health`). */
    public?: boolean;
    /** The scope a key needs for this route; "read" when absent. */
    scope?: ApiScope;
  }
  interface FastifyRequest {
    /** The key that authenticated this request; null on public routes. */
    apiKey: ApiKeyRow | null;
  }
}

/** The store keeps only this (hex SHA-256 of the key as sent), so a leaked table grants nothing. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The key as sent: `x-api-key` (the API Gateway convention the AWS-compatible routes'
 * clients use) or `Authorization: Bearer <key>`. Null when neither is present.
 */
export function apiKeyFromHeaders(headers: FastifyRequest["headers"]): string | null {
  const header = headers["x-api-key"];
  if (typeof header === "string" && header.trim() !== "") return header.trim();
  if (Array.isArray(header)) throw apiError("api.unauthorized", "send one x-api-key header, not several");
  const authorization = headers.authorization;
  if (authorization === undefined || authorization.trim() === "") return null;
  const match = BEARER.exec(authorization);
  if (match?.[1] === undefined) {
    throw apiError("api.unauthorized", "Authorization header must be 'Bearer <api key>'");
  }
  return match[1];
}

/** "admin" keys may do everything "read" keys may. */
function grants(key: ApiKeyRow, scope: ApiScope): boolean {
  return key.scopes.includes(scope) || key.scopes.includes("admin");
}

/**
 * The one auth hook: every route (and the not-found handler, so unknown paths do not reveal
 * which exist) needs a valid, unrevoked key with the route's scope unless marked `public`.
 * 401 when the key is missing, unknown or revoked; 403 when it lacks the scope.
 */
export function registerApiKeyAuth(app: FastifyInstance, store: Store): void {
  app.decorateRequest("apiKey", null);
  app.addHook("onRequest", async (request) => {
    const config = request.routeOptions.config;
    if (config.public === true) return;
    const key = apiKeyFromHeaders(request.headers);
    if (key === null) {
      throw apiError("api.unauthorized", "an API key is required: send it as x-api-key or Authorization: Bearer");
    }
    const row = await store.findApiKeyByHash(hashApiKey(key));
    if (row === null) throw apiError("api.unauthorized", "unknown API key");
    if (row.revokedAt !== null) throw apiError("api.unauthorized", "this API key was revoked");
    const scope = config.scope ?? "read";
    if (!grants(row, scope)) {
      throw apiError("api.forbidden", `this API key lacks the '${scope}' scope`);
    }
    request.apiKey = row;
  });
}
