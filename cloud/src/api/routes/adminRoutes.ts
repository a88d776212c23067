import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ApiDeps } from "../apiDeps.js";
import { pageOf, pageQuery } from "../pagination.js";
import { parseRequestPart } from "../requestInput.js";
import { RejectedMessageRowSchema } from "../responseSchemas.js";
import { routeDoc } from "../routeDocs.js";

const RejectedQuery = z.strictObject(pageQuery({ defaultLimit: 100, maxLimit: 1000 }));

/** Operator routes: what ingest refused and why. Rejected payloads may hold anything, hence admin scope. */
export function registerAdminRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get(
    "/v1/rejected-messages",
    {
      config: { scope: "admin" },
      ...routeDoc({
        tags: ["admin"],
        summary: "Messages ingest refused, with the reason (admin)",
        query: RejectedQuery,
        response: z.object({
          items: z.array(RejectedMessageRowSchema),
          total: z.number().int(),
          limit: z.number().int(),
          offset: z.number().int(),
        }),
      }),
    },
    async (request) => {
      const query = parseRequestPart(RejectedQuery, request.query, "querystring");
      const [items, total] = await Promise.all([deps.store.listRejected(pageOf(query)), deps.store.countRejected()]);
      return { items, total, limit: query.limit, offset: query.offset };
    },
  );

  // Counters of this instance's ingest (messages landed, duplicates, rejected…), when one runs here.
  app.get(
    "/v1/ingest/stats",
    {
      config: { scope: "admin" },
      ...routeDoc({
        tags: ["admin"],
        summary: "Counters of this instance's ingest (null when none runs here) (admin)",
        response: z.object({ stats: z.record(z.string(), z.number()).nullable() }),
      }),
    },
    async () => ({
      stats: deps.ingestStats?.() ?? null,
    }),
  );
}
