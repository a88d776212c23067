import { z } from "zod";

/**
 * Gateway and meter ids appear in MQTT topics, certificate CNs, file names and URLs, so
 * they are restricted to characters that are safe in all four: no `/`, `+`, `#`, spaces.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const GatewayId = z
  .string()
  .regex(ID_PATTERN, "must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit");
export const MeterId = GatewayId;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}
