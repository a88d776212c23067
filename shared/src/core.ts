/**
 * `@edgemeter/shared/core`: everything of this package that needs no zod at run time (errors,
 * ids, measurements, topic names, wire constants, the technician password). A process that
 * validates nothing at run time, like the gateway daemon once its configuration is loaded,
 * imports this instead of the index and keeps zod (~3 MB of heap) out of its memory
 * (issue 4 footprint). Types of the wire payloads come from the index with `import type`.
 */
export * from "./errors.js";
export * from "./idPattern.js";
export * from "./measurements.js";
export * from "./technicianPassword.js";
export * from "./topicNames.js";
export * from "./validation.js";
export * from "./wireConstants.js";
