import type { FastifyInstance } from "fastify";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PgliteSqlClient } from "../store/pgliteSqlClient.js";
import { PostgresStore } from "../store/postgresStore.js";
import { registeredRoutes } from "./apiPlugins.js";
import { hashApiKey } from "./auth.js";
import { buildApi } from "./buildApi.js";
import { MeterRowSchema, pageOf } from "./responseSchemas.js";

const silent = pino({ level: "silent" });
const READ_KEY = "openapi-test-read-key-0123456789abcdef";

interface Parameter {
  name: string;
  in: "path" | "query";
  required?: boolean;
}
interface Operation {
  summary?: string;
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }>;
}
type OpenApi = { paths: Record<string, Record<string, Operation>> };

/**
 * Query parameters per route, written out by hand (not derived from the code), so a route that
 * loses a parameter in the document fails here.
 */
const QUERY: Record<string, { optional: string[]; required: string[] }> = {
  "GET /v1/meters": { required: [], optional: ["limit", "offset"] },
  "GET /v1/meters/:id/readings": { required: [], optional: ["from", "to", "limit", "offset"] },
  "GET /v1/gateways": { required: [], optional: ["limit", "offset"] },
  "GET /v1/rejected-messages": { required: [], optional: ["limit", "offset"] },
  "GET /v1/meters/:id/consumption/daily": { required: ["from", "to"], optional: [] },
  "GET /v1/meters/:id/consumption/hourly": { required: ["from", "to"], optional: [] },
  "GET /v1/events": { required: ["from", "to"], optional: ["meterId", "limit", "offset"] },
  "GET /v1/outages": { required: ["from", "to"], optional: [] },
  "GET /anomaly/:meter_id": { required: ["data_start", "data_end"], optional: ["outlier_only"] },
  "GET /forecast/:meter_id": { required: ["data_start", "data_end"], optional: [] },
  "GET /outage": { required: ["start_date_time", "end_date_time"], optional: [] },
  "GET /v1/bill-runs": { required: [], optional: ["limit", "offset"] },
  "GET /v1/bills": { required: [], optional: ["period", "meterId", "limit", "offset"] },
};

/** Routes of the docs plugin itself: not API routes. */
const isDocsRoute = (url: string) => url === "/openapi.json" || url.startsWith("/docs");

describe("the OpenAPI document", () => {
  let store: PostgresStore;
  let app: FastifyInstance;
  let doc: OpenApi;

  beforeAll(async () => {
    store = new PostgresStore({ sql: await PgliteSqlClient.open(), logger: silent });
    await store.migrate();
    await store.createApiKey("reader", hashApiKey(READ_KEY), ["read"]);
    // Over the PostgreSQL-dialect store every route group registers (platform, seed, billing).
    app = await buildApi({ store, meterData: store, logger: silent });
    await app.ready();
    const response = await app.inject({ method: "GET", url: "/openapi.json" });
    expect(response.statusCode).toBe(200);
    doc = response.json() as OpenApi;
  });
  afterAll(async () => {
    await app.close();
    await store.close();
  });

  const apiRoutes = () => registeredRoutes(app).filter((route) => route.method !== "HEAD" && !isDocsRoute(route.url));

  it("lists every registered route with a summary, its path parameters and a success response schema", () => {
    const routes = apiRoutes();
    // All groups registered: v1, seed and billing routes are all there.
    expect(routes.map((r) => `${r.method} ${r.url}`)).toEqual(
      expect.arrayContaining([
        "GET /health",
        "GET /v1/meters/:id/readings",
        "PUT /v1/meters/:id",
        "GET /consumption/:aggregation/:year/:meter_id",
        "GET /v1/bills/:id/invoice.pdf",
      ]),
    );
    for (const route of routes) {
      const name = `${route.method} ${route.url}`;
      const path = route.url.replace(/:([A-Za-z_]+)/g, "{$1}");
      const operation = doc.paths[path]?.[route.method.toLowerCase()];
      expect(operation, `${name} is missing from /openapi.json`).toBeDefined();
      if (operation === undefined) continue;
      expect(operation.summary, `${name}: summary`).toMatch(/\w/);
      const pathParams = [...route.url.matchAll(/:([A-Za-z_]+)/g)].map((m) => m[1]);
      const documentedPath = (operation.parameters ?? []).filter((p) => p.in === "path");
      expect(documentedPath.map((p) => p.name).sort(), `${name}: path parameters`).toEqual(pathParams.sort());
      expect(
        documentedPath.every((p) => p.required === true),
        `${name}: path parameters required`,
      ).toBe(true);
      const success = Object.entries(operation.responses).find(([status]) => /^2\d\d$/.test(status));
      expect(success, `${name}: a 2xx response`).toBeDefined();
      const content = success?.[1].content ?? {};
      expect(Object.keys(content).length, `${name}: a response content type`).toBeGreaterThan(0);
      const json = content["application/json"]?.schema;
      if (json !== undefined) expect(Object.keys(json).length, `${name}: a JSON response shape`).toBeGreaterThan(0);
    }
  });

  it("documents each route's query parameters, required ones marked, and nothing for routes without", () => {
    for (const route of apiRoutes()) {
      const name = `${route.method} ${route.url}`;
      const path = route.url.replace(/:([A-Za-z_]+)/g, "{$1}");
      const query = (doc.paths[path]?.[route.method.toLowerCase()]?.parameters ?? []).filter((p) => p.in === "query");
      const expected = QUERY[name] ?? { required: [], optional: [] };
      expect(query.map((p) => p.name).sort(), `${name}: query parameters`).toEqual(
        [...expected.required, ...expected.optional].sort(),
      );
      expect(
        query
          .filter((p) => p.required === true)
          .map((p) => p.name)
          .sort(),
        `${name}: required query parameters`,
      ).toEqual([...expected.required].sort());
    }
  });

  it("documents request bodies and the shapes of answers from the zod schemas", async () => {
    const put = doc.paths["/v1/meters/{id}"]?.put;
    const body = put?.requestBody?.content["application/json"]?.schema as { properties: Record<string, unknown> };
    expect(Object.keys(body.properties).sort()).toEqual(
      ["customerId", "gatewayId", "latitude", "longitude", "tariffId", "timeZone"].sort(),
    );
    expect(doc.paths["/v1/meters"]?.post?.responses["201"]).toBeDefined();
    const daily = doc.paths["/v1/meters/{id}/consumption/daily"]?.get?.responses["200"]?.content ?? {};
    expect(Object.keys(daily).sort()).toEqual(["application/json", "text/csv"]);
    const seed = doc.paths["/consumption/{aggregation}/{year}/{meter_id}"]?.get?.responses["200"]?.content;
    expect(seed?.["application/json"]?.schema).toMatchObject({ type: "array" });
    expect(doc.paths["/v1/bills/{id}/invoice.pdf"]?.get?.responses["200"]?.content).toHaveProperty("application/pdf");

    // The documented shape is the real one: an answer parses with the schema the document came from.
    await store.registerMeter({
      meterId: "doc-m1",
      gatewayId: null,
      customerId: "c1",
      tariffId: null,
      latitude: 52.5,
      longitude: 13.4,
      timeZone: "Europe/Berlin",
    });
    const meters = await app.inject({ method: "GET", url: "/v1/meters", headers: { "x-api-key": READ_KEY } });
    expect(meters.statusCode).toBe(200);
    expect(
      pageOf(MeterRowSchema)
        .strict()
        .parse(meters.json())
        .items.map((m) => m.meterId),
    ).toContain("doc-m1");
  });

  it("leaves validation to zod: a bad parameter still gets our 400 naming it, an unknown one too", async () => {
    const bad = await app.inject({ method: "GET", url: "/v1/meters?limit=abc", headers: { "x-api-key": READ_KEY } });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain("querystring.limit");
    const unknown = await app.inject({
      method: "GET",
      url: "/v1/meters?colour=red",
      headers: { "x-api-key": READ_KEY },
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.body).toContain("colour");
  });
});
