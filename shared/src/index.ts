export * from "./errors.js";
export * from "./ids.js";
export * from "./measurements.js";
export * from "./technicianPassword.js";
export * from "./topics.js";
export * from "./validation.js";
export * from "./wire.js";
