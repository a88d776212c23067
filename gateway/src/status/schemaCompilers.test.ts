import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { SCHEMA_COMPILERS_ON_FIRST_USE } from "./schemaCompilers.js";

describe("fastify schema compilers loaded on first use", () => {
  it("still validate a body and serialize a response when a route declares schemas", async () => {
    const app = Fastify({ schemaController: { compilersFactory: SCHEMA_COMPILERS_ON_FIRST_USE } });
    app.post(
      "/echo",
      {
        schema: {
          body: { type: "object", required: ["n"], properties: { n: { type: "integer" } } },
          response: { 200: { type: "object", properties: { n: { type: "integer" } } } },
        },
      },
      async (request) => ({ n: (request.body as { n: number }).n, secret: "not in the schema" }),
    );
    const ok = await app.inject({ method: "POST", url: "/echo", payload: { n: 3 } });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ n: 3 }); // fast-json-stringify drops what the response schema lacks
    const bad = await app.inject({ method: "POST", url: "/echo", payload: { n: "three" } });
    expect(bad.statusCode).toBe(400);
    await app.close();
  });
});
