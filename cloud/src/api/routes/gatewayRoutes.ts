import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ApiDeps } from "../apiDeps.js";
import { pageOf, pageQuery } from "../pagination.js";
import { parseRequestPart } from "../requestInput.js";
import { GatewayRowSchema, pageOf as pageSchema } from "../responseSchemas.js";
import { routeDoc } from "../routeDocs.js";

const GatewaysQuery = z.strictObject(pageQuery({ defaultLimit: 100, maxLimit: 1000 }));

export function registerGatewayRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get(
    "/v1/gateways",
    routeDoc({
      tags: ["gateways"],
      summary: "Gateways with last-seen time and online state",
      query: GatewaysQuery,
      response: pageSchema(GatewayRowSchema),
    }),
    async (request) => {
      const query = parseRequestPart(GatewaysQuery, request.query, "querystring");
      const items = await deps.store.listGateways(pageOf(query));
      return { items, limit: query.limit, offset: query.offset };
    },
  );
}
