import { createRequire } from "node:module";
import type { FastifyServerOptions } from "fastify";

type SchemaCompilers = NonNullable<NonNullable<FastifyServerOptions["schemaController"]>["compilersFactory"]>;
type BuildValidator = NonNullable<SchemaCompilers["buildValidator"]>;
type BuildSerializer = NonNullable<SchemaCompilers["buildSerializer"]>;

/** fastify's own dependencies, resolved from its folder: they are not the gateway's. */
const fastifyRequire = createRequire(createRequire(import.meta.url).resolve("fastify"));

/** A compiler factory (the module's default export, called once) required on its first call. */
function requiredOnFirstCall<Factory>(moduleId: string): Factory {
  let factory: ((...args: unknown[]) => unknown) | undefined;
  const onFirstCall = (...args: unknown[]) => {
    factory ??= (fastifyRequire(moduleId) as () => (...args: unknown[]) => unknown)();
    return factory(...args);
  };
  // The factory types are overloaded unions: the module's own default export is what satisfies them.
  return onFirstCall as unknown as Factory;
}

/**
 * fastify's default schema compilers (@fastify/ajv-compiler, @fastify/fast-json-stringify-compiler),
 * loaded the first time a route declares a schema instead of when the server is created: without
 * a `schemaController.compilersFactory` (fastify's documented option, docs/Reference/Server.md)
 * fastify requires both at once (lib/schema-controller.js), and with them Ajv, ~90 modules. The
 * status page declares no schemas: not loading them keeps ~1.2 MB of heap out of the gateway
 * (issue 4 footprint). A route that does declare one still gets Ajv and fast-json-stringify
 * (schemaCompilers.test.ts).
 */
export const SCHEMA_COMPILERS_ON_FIRST_USE: SchemaCompilers = {
  buildValidator: requiredOnFirstCall<BuildValidator>("@fastify/ajv-compiler"),
  buildSerializer: requiredOnFirstCall<BuildSerializer>("@fastify/fast-json-stringify-compiler"),
};
