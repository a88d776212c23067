import type { z } from "zod";
import { type ApiErrorDetail, apiError } from "./apiErrors.js";

/** The part of a request a parameter came from; it prefixes the parameter in error messages. */
export type RequestPart = "params" | "querystring" | "headers" | "body";

/**
 * Validates one part of a request with zod (not fastify's ajv, so messages are ours) and throws
 * `api.badRequest` naming every bad parameter: `querystring.from: must be an ISO 8601 time…`.
 */
export function parseRequestPart<S extends z.ZodType>(schema: S, input: unknown, part: RequestPart): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const details: ApiErrorDetail[] = result.error.issues.map((issue) => ({
    path: [part, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
  throw apiError("api.badRequest", details.map((d) => `${d.path}: ${d.message}`).join("; "), details);
}
