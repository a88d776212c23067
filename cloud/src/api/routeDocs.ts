import { z } from "zod";

/**
 * OpenAPI descriptions of routes for @fastify/swagger, generated from the zod schemas the
 * handlers validate with (z.toJSONSchema), so the document cannot drift from the checks.
 * Requests are still validated by zod in the handlers (our error messages, our 400 shape):
 * the route's validator compiler accepts everything (fastify's ajv would coerce types, fill
 * defaults and strip unknown properties, changing what zod sees), and its serializer compiler
 * is JSON.stringify (fast-json-stringify would drop fields a response schema does not list).
 * The schemas are documentation only.
 */
export interface RouteDocOptions {
  tags: string[];
  summary: string;
  description?: string;
  /** The zod schema the handler parses `request.params` with. */
  params?: z.ZodType;
  /** The zod schema the handler parses `request.query` with. */
  query?: z.ZodType;
  /** Descriptions of path and query parameters (name → text), added to the generated schemas. */
  notes?: Record<string, string>;
  /** The zod schema the handler parses the JSON body with. */
  body?: z.ZodType;
  /** The JSON answer on success. */
  response?: z.ZodType;
  /** Status of the success answer (default 200). */
  status?: number;
  /** Other representations of the success answer, e.g. `text/csv` (with Accept) or `application/pdf`. */
  alsoProduces?: string[];
  /** The success answer is not JSON at all (CSV file, PDF): its content type. */
  produces?: string;
}

type JsonSchema = Record<string, unknown>;

/** The JSON Schema (2020-12, as OpenAPI 3.1 uses) of what a client sends (io input) or receives. */
export function jsonSchemaOf(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io,
    target: "draft-2020-12",
    // A refinement or transform has no JSON Schema: documented as its input type, checked by zod.
    unrepresentable: "any",
  }) as JsonSchema;
  return rest;
}

/** Query and path schemas as @fastify/swagger turns into parameters: an object with properties. */
function parameterSchema(schema: z.ZodType, notes: Record<string, string> = {}): JsonSchema {
  const json = jsonSchemaOf(schema, "input");
  const properties = Object.fromEntries(
    Object.entries((json.properties ?? {}) as Record<string, JsonSchema>).map(([name, property]) => [
      name,
      notes[name] === undefined ? property : { ...property, description: notes[name] },
    ]),
  );
  return { type: "object", properties, ...(json.required ? { required: json.required } : {}) };
}

function successResponse(options: RouteDocOptions): JsonSchema {
  const description = options.summary;
  if (options.produces !== undefined) {
    return {
      description,
      content: { [options.produces]: { schema: { type: "string", format: "binary" } } },
    };
  }
  const json = options.response === undefined ? {} : jsonSchemaOf(options.response, "output");
  const content: Record<string, { schema: JsonSchema }> = { "application/json": { schema: json } };
  for (const type of options.alsoProduces ?? []) content[type] = { schema: { type: "string" } };
  return { description, content };
}

const ERROR_RESPONSE = {
  description: "Error: {error: {code, message, details?}} (400 names the bad parameter)",
  content: {
    "application/json": {
      schema: {
        type: "object",
        properties: {
          error: {
            type: "object",
            properties: { code: { type: "string" }, message: { type: "string" }, details: { type: "array" } },
            required: ["code", "message"],
          },
        },
        required: ["error"],
      },
    },
  },
};

export function routeDoc(options: RouteDocOptions) {
  return {
    attachValidation: true,
    validatorCompiler: () => () => true,
    serializerCompiler: () => (data: unknown) => JSON.stringify(data),
    schema: {
      tags: options.tags,
      summary: options.summary,
      ...(options.description === undefined ? {} : { description: options.description }),
      ...(options.params === undefined ? {} : { params: parameterSchema(options.params, options.notes) }),
      ...(options.query === undefined ? {} : { querystring: parameterSchema(options.query, options.notes) }),
      ...(options.body === undefined ? {} : { body: jsonSchemaOf(options.body, "input") }),
      response: { [String(options.status ?? 200)]: successResponse(options), "4XX": ERROR_RESPONSE },
    },
  };
}
