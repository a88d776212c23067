import { z } from "zod";
import { ID_PATTERN } from "./idPattern.js";

export { ID_PATTERN, isValidId } from "./idPattern.js";

export const GatewayId = z
  .string()
  .regex(ID_PATTERN, "must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit");
export const MeterId = GatewayId;
