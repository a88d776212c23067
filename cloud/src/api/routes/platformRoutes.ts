import { isEdgemeterError, MeterId } from "@edgemeter/shared";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { isTimeZone } from "../../store/consumptionRollups.js";
import type { MeterDataStore, MeterRegistration, OutageRow } from "../../store/meterData.js";
import type { ApiDeps } from "../apiDeps.js";
import { apiError } from "../apiErrors.js";
import { sendTable } from "../csvTable.js";
import { pageOf, pageQuery } from "../pagination.js";
import { parseRequestPart } from "../requestInput.js";
import {
  DailyConsumptionRowSchema,
  EventRowSchema,
  HourlyConsumptionRowSchema,
  MeterRowSchema,
  OutageGroupsSchema,
} from "../responseSchemas.js";
import { routeDoc } from "../routeDocs.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const MAX_RANGE_DAYS = 400;

const IsoTime = z.iso
  .datetime({ offset: true, message: "must be an ISO 8601 time with a zone, like 2026-01-31T00:00:00Z" })
  .transform((text) => new Date(text));
const Day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "must be a date YYYY-MM-DD");

const MeterParams = z.object({ id: MeterId });

const Registration = z.strictObject({
  gatewayId: z.string().min(1).max(128).nullable().default(null),
  customerId: z.string().min(1).max(128).nullable().default(null),
  tariffId: z.string().min(1).max(128).nullable().default(null),
  latitude: z.number().min(-90).max(90).nullable().default(null),
  longitude: z.number().min(-180).max(180).nullable().default(null),
  timeZone: z.string().refine(isTimeZone, "must be an IANA time zone such as Europe/Berlin").nullable().default(null),
});
const NewMeter = Registration.extend({ meterId: MeterId });

const DailyQuery = z
  .strictObject({ from: Day, to: Day })
  .refine((q) => q.from < q.to, { message: "must be before to", path: ["from"] });

const RangeQuery = z
  .strictObject({ from: IsoTime, to: IsoTime })
  .refine((q) => q.from < q.to, { message: "must be before to", path: ["from"] })
  .refine((q) => q.to.getTime() - q.from.getTime() <= MAX_RANGE_DAYS * DAY_MS, {
    message: `must be at most ${MAX_RANGE_DAYS} days before to`,
    path: ["from"],
  });

const EventsQuery = z
  .strictObject({
    from: IsoTime,
    to: IsoTime,
    meterId: MeterId.optional(),
    ...pageQuery({ defaultLimit: 1000, maxLimit: 10_000 }),
  })
  .refine((q) => q.from < q.to, { message: "must be before to", path: ["from"] });

/**
 * /v1 platform routes (issue 5): meter registry writes (admin), consumption rollups, events
 * and outages; tables answer CSV for `Accept: text/csv`.
 */
export function registerPlatformRoutes(app: FastifyInstance, meterData: MeterDataStore, deps: ApiDeps): void {
  const register = async (meter: MeterRegistration) => {
    try {
      return await meterData.registerMeter(meter);
    } catch (error) {
      if (isEdgemeterError(error) && error.code === "storage.notFound") {
        throw apiError("api.badRequest", `body.gatewayId: ${error.message}`, [
          { path: "body.gatewayId", message: error.message },
        ]);
      }
      throw error;
    }
  };

  // Creates or replaces a meter's registry fields.
  app.put(
    "/v1/meters/:id",
    {
      config: { scope: "admin" },
      ...routeDoc({
        tags: ["meters"],
        summary: "Create or replace a meter's registry fields (admin)",
        description:
          "JSON body: gatewayId, customerId, tariffId, latitude, longitude, timeZone (IANA); absent fields become null.",
        params: MeterParams,
        body: Registration,
        response: MeterRowSchema,
      }),
    },
    async (request) => {
      const { id } = parseRequestPart(MeterParams, request.params, "params");
      const body = parseRequestPart(Registration, request.body, "body");
      return register({ meterId: id, ...body });
    },
  );

  app.post(
    "/v1/meters",
    {
      config: { scope: "admin" },
      ...routeDoc({
        tags: ["meters"],
        summary: "Register a new meter (admin); 400 when it exists",
        description: "JSON body: meterId plus the fields of PUT /v1/meters/{id}.",
        body: NewMeter,
        status: 201,
        response: MeterRowSchema,
      }),
    },
    async (request, reply) => {
      const body = parseRequestPart(NewMeter, request.body, "body");
      if ((await deps.store.getMeter(body.meterId)) !== null) {
        throw apiError(
          "api.badRequest",
          `body.meterId: meter ${body.meterId} exists; use PUT /v1/meters/${body.meterId}`,
          [{ path: "body.meterId", message: "exists" }],
        );
      }
      const meter = await register(body);
      return reply.code(201).send(meter);
    },
  );

  app.get(
    "/v1/meters/:id/consumption/daily",
    routeDoc({
      tags: ["consumption"],
      summary: "Daily rollups (local days of the meter's time zone); CSV with Accept: text/csv",
      params: MeterParams,
      query: DailyQuery,
      notes: { from: "YYYY-MM-DD (inclusive)", to: "YYYY-MM-DD (exclusive)" },
      alsoProduces: ["text/csv"],
      response: z.object({
        meterId: z.string(),
        from: z.string(),
        to: z.string(),
        items: z.array(DailyConsumptionRowSchema),
      }),
    }),
    async (request, reply) => {
      const { id } = parseRequestPart(MeterParams, request.params, "params");
      const query = parseRequestPart(DailyQuery, request.query, "querystring");
      const items = await meterData.dailyConsumption(id, query.from, query.to);
      return sendTable(request, reply, ["day", "timeZone", "importKwh", "exportKwh"], items, {
        meterId: id,
        from: query.from,
        to: query.to,
        items,
      });
    },
  );

  app.get(
    "/v1/meters/:id/consumption/hourly",
    routeDoc({
      tags: ["consumption"],
      summary: "Hourly rollups (UTC hours); CSV with Accept: text/csv",
      params: MeterParams,
      query: RangeQuery,
      notes: { from: "ISO 8601 time with zone (inclusive)", to: "ISO 8601 time with zone (exclusive)" },
      alsoProduces: ["text/csv"],
      response: z.object({
        meterId: z.string(),
        from: z.string(),
        to: z.string(),
        items: z.array(HourlyConsumptionRowSchema),
      }),
    }),
    async (request, reply) => {
      const { id } = parseRequestPart(MeterParams, request.params, "params");
      const query = parseRequestPart(RangeQuery, request.query, "querystring");
      const items = await meterData.hourlyConsumption(id, query.from, query.to);
      return sendTable(request, reply, ["hourStart", "importKwh", "exportKwh"], items, {
        meterId: id,
        from: query.from.toISOString(),
        to: query.to.toISOString(),
        items,
      });
    },
  );

  app.get(
    "/v1/events",
    routeDoc({
      tags: ["events"],
      summary: "Events in a time range, optionally of one meter; CSV with Accept: text/csv",
      query: EventsQuery,
      notes: {
        from: "ISO 8601 time with zone",
        to: "ISO 8601 time with zone",
        meterId: "meter id",
        limit: "page size",
        offset: "rows to skip",
      },
      alsoProduces: ["text/csv"],
      response: z.object({
        from: z.string(),
        to: z.string(),
        limit: z.number().int(),
        offset: z.number().int(),
        items: z.array(EventRowSchema),
      }),
    }),
    async (request, reply) => {
      const query = parseRequestPart(EventsQuery, request.query, "querystring");
      const items = await meterData.events(query.from, query.to, query.meterId ?? null, pageOf(query));
      return sendTable(
        request,
        reply,
        [
          "ts",
          "gatewayId",
          "meterId",
          "eventId",
          "state",
          "kind",
          "phase",
          "value",
          "threshold",
          "durationMs",
          "clock",
        ],
        items,
        { from: query.from.toISOString(), to: query.to.toISOString(), limit: query.limit, offset: query.offset, items },
      );
    },
  );

  // Outages overlapping [from, to), grouped by gateway; CSV is one line per outage.
  app.get(
    "/v1/outages",
    routeDoc({
      tags: ["outages"],
      summary: "Outages overlapping a time range, grouped by gateway; CSV with Accept: text/csv",
      query: RangeQuery,
      notes: { from: "ISO 8601 time with zone", to: "ISO 8601 time with zone" },
      alsoProduces: ["text/csv"],
      response: OutageGroupsSchema,
    }),
    async (request, reply) => {
      const query = parseRequestPart(RangeQuery, request.query, "querystring");
      const outages = await meterData.outages(query.from, query.to);
      const groups = new Map<string, OutageRow[]>();
      for (const outage of outages) {
        const key = outage.gatewayId ?? "";
        groups.set(key, [...(groups.get(key) ?? []), outage]);
      }
      return sendTable(
        request,
        reply,
        ["gatewayId", "meterId", "cause", "startedAt", "endedAt", "latitude", "longitude"],
        outages,
        {
          from: query.from.toISOString(),
          to: query.to.toISOString(),
          gateways: [...groups.entries()].map(([gatewayId, items]) => ({
            gatewayId: gatewayId === "" ? null : gatewayId,
            outages: items.map(({ meterId, cause, startedAt, endedAt, latitude, longitude }) => ({
              meterId,
              cause,
              startedAt,
              endedAt,
              latitude,
              longitude,
            })),
          })),
        },
      );
    },
  );
}
