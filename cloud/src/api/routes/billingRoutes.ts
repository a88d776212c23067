import { MeterId } from "@edgemeter/shared";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { billRunCsv, getBill, getBillRun, listBillRuns, listBills } from "../../billing/billingQueries.js";
import { renderInvoicePdf } from "../../billing/pdfkitInvoice.js";
import { PostgresStore } from "../../store/postgresStore.js";
import type { ApiDeps } from "../apiDeps.js";
import { apiError } from "../apiErrors.js";
import { pageOf, pageQuery } from "../pagination.js";
import { parseRequestPart } from "../requestInput.js";
import { BillRunViewSchema, BillViewSchema, BillWithContentSchema, pageOf as pageSchema } from "../responseSchemas.js";
import { routeDoc } from "../routeDocs.js";

const IdParams = z.object({
  id: z
    .string()
    .regex(/^\d{1,15}$/, "must be a positive whole number")
    .transform(Number),
});
const RunsQuery = z.strictObject(pageQuery({ defaultLimit: 100, maxLimit: 1000 }));
const BillsQuery = z.strictObject({
  period: z
    .string()
    .regex(/^\d{4}-(0[1-9]|1[0-2])$/, "must be a month like 2026-10")
    .optional(),
  meterId: MeterId.optional(),
  ...pageQuery({ defaultLimit: 100, maxLimit: 10_000 }),
});

/**
 * Billing (issue 7): `GET /v1/bill-runs`, `/v1/bill-runs/{id}`, `/v1/bill-runs/{id}/bills.csv`,
 * `/v1/bills?period=&meterId=`, `/v1/bills/{id}` (JSON with line items, reads and VEE flags),
 * `/v1/bills/{id}/invoice.pdf`. Registered only over the PostgreSQL-dialect store, which
 * holds the billing tables.
 */
export function registerBillingRoutes(app: FastifyInstance, deps: ApiDeps): void {
  if (!(deps.store instanceof PostgresStore)) return;
  const sql = deps.store.sql;

  app.get(
    "/v1/bill-runs",
    routeDoc({
      tags: ["billing"],
      summary: "Bill runs, newest first",
      query: RunsQuery,
      response: pageSchema(BillRunViewSchema),
    }),
    async (request) => {
      const query = parseRequestPart(RunsQuery, request.query, "querystring");
      return { items: await listBillRuns(sql, pageOf(query)), limit: query.limit, offset: query.offset };
    },
  );

  app.get(
    "/v1/bill-runs/:id",
    routeDoc({ tags: ["billing"], summary: "One bill run", params: IdParams, response: BillRunViewSchema }),
    async (request) => {
      const { id } = parseRequestPart(IdParams, request.params, "params");
      const run = await getBillRun(sql, id);
      if (run === null) throw apiError("api.notFound", `bill run ${id} not found`);
      return run;
    },
  );

  app.get(
    "/v1/bill-runs/:id/bills.csv",
    routeDoc({ tags: ["billing"], summary: "The bills of a run as CSV", params: IdParams, produces: "text/csv" }),
    async (request, reply) => {
      const { id } = parseRequestPart(IdParams, request.params, "params");
      const csv = await billRunCsv(sql, id);
      if (csv === null) throw apiError("api.notFound", `bill run ${id} not found`);
      return reply
        .type("text/csv; charset=utf-8")
        .header("content-disposition", `attachment; filename="bill-run-${id}.csv"`)
        .send(csv);
    },
  );

  app.get(
    "/v1/bills",
    routeDoc({
      tags: ["billing"],
      summary: "Bills, optionally of one period (YYYY-MM) and meter",
      query: BillsQuery,
      response: pageSchema(BillViewSchema),
    }),
    async (request) => {
      const query = parseRequestPart(BillsQuery, request.query, "querystring");
      const items = await listBills(sql, { period: query.period, meterId: query.meterId }, pageOf(query));
      return { items, limit: query.limit, offset: query.offset };
    },
  );

  app.get(
    "/v1/bills/:id",
    routeDoc({
      tags: ["billing"],
      summary: "One bill with line items, reads and VEE flags",
      params: IdParams,
      response: BillWithContentSchema,
    }),
    async (request) => {
      const { id } = parseRequestPart(IdParams, request.params, "params");
      const bill = await getBill(sql, id);
      if (bill === null) throw apiError("api.notFound", `bill ${id} not found`);
      return bill;
    },
  );

  app.get(
    "/v1/bills/:id/invoice.pdf",
    routeDoc({ tags: ["billing"], summary: "A bill's invoice (PDF)", params: IdParams, produces: "application/pdf" }),
    async (request, reply) => {
      const { id } = parseRequestPart(IdParams, request.params, "params");
      const bill = await getBill(sql, id);
      if (bill === null) throw apiError("api.notFound", `bill ${id} not found`);
      const pdf = await renderInvoicePdf(bill);
      return reply.type("application/pdf").header("content-disposition", `inline; filename="bill-${id}.pdf"`).send(pdf);
    },
  );
}
