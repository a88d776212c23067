import { MeterId } from "@edgemeter/shared";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ApiDeps } from "../apiDeps.js";
import { apiError } from "../apiErrors.js";
import { pageOf, pageQuery } from "../pagination.js";
import { parseRequestPart } from "../requestInput.js";
import { MeterRowSchema, pageOf as pageSchema, ReadingRowSchema } from "../responseSchemas.js";
import { routeDoc } from "../routeDocs.js";

const DAY_MS = 24 * 60 * 60 * 1000;
export const MAX_READINGS_PER_PAGE = 10_000;

/** A time zone is required: a zone-less time would be read in the server's zone, which nobody can see. */
const IsoTimeParam = z.iso
  .datetime({ offset: true, message: "must be an ISO 8601 time with a zone, like 2026-01-31T00:00:00Z" })
  .transform((text) => new Date(text));

const MeterParams = z.object({ id: MeterId });

const MetersQuery = z.strictObject(pageQuery({ defaultLimit: 100, maxLimit: 1000 }));

const ReadingsQuery = z
  .strictObject({
    from: IsoTimeParam.optional(),
    to: IsoTimeParam.optional(),
    ...pageQuery({ defaultLimit: 1000, maxLimit: MAX_READINGS_PER_PAGE }),
  })
  .refine((q) => q.from === undefined || q.to === undefined || q.from < q.to, {
    message: "must be before to",
    path: ["from"],
  });

export function registerMeterRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get(
    "/v1/meters",
    routeDoc({ tags: ["meters"], summary: "Meters, by id", query: MetersQuery, response: pageSchema(MeterRowSchema) }),
    async (request) => {
      const query = parseRequestPart(MetersQuery, request.query, "querystring");
      const items = await deps.store.listMeters(pageOf(query));
      return { items, limit: query.limit, offset: query.offset };
    },
  );

  app.get(
    "/v1/meters/:id",
    routeDoc({
      tags: ["meters"],
      summary: "One meter's registry entry",
      params: MeterParams,
      response: MeterRowSchema,
    }),
    async (request) => {
      const { id } = parseRequestPart(MeterParams, request.params, "params");
      const meter = await deps.store.getMeter(id);
      if (meter === null) throw apiError("api.notFound", `meter ${id} not found`);
      return meter;
    },
  );

  // Readings with from <= ts < to, oldest first. `to` defaults to now, `from` to 24 h before `to`.
  app.get(
    "/v1/meters/:id/readings",
    routeDoc({
      tags: ["meters"],
      summary: "A meter's readings with from <= ts < to, oldest first",
      params: MeterParams,
      query: ReadingsQuery,
      notes: {
        from: "ISO 8601 time with zone (default: 24 h before to)",
        to: "ISO 8601 time with zone (default: now)",
      },
      response: z.object({
        meterId: z.string(),
        from: z.string(),
        to: z.string(),
        limit: z.number().int(),
        offset: z.number().int(),
        items: z.array(ReadingRowSchema),
      }),
    }),
    async (request) => {
      const { id } = parseRequestPart(MeterParams, request.params, "params");
      const query = parseRequestPart(ReadingsQuery, request.query, "querystring");
      const to = query.to ?? deps.now();
      const from = query.from ?? new Date(to.getTime() - DAY_MS);
      if (from >= to) {
        // Only reachable when `to` was defaulted to now and `from` lies in the future.
        throw apiError("api.badRequest", "querystring.from: must be before to", [
          { path: "querystring.from", message: "must be before to" },
        ]);
      }
      if ((await deps.store.getMeter(id)) === null) throw apiError("api.notFound", `meter ${id} not found`);
      const items = await deps.store.readings(id, from, to, pageOf(query));
      return {
        meterId: id,
        from: from.toISOString(),
        to: to.toISOString(),
        limit: query.limit,
        offset: query.offset,
        items,
      };
    },
  );
}
