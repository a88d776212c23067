/**
 * Gateway and meter ids appear in MQTT topics, certificate CNs, file names and URLs, so
 * they are restricted to characters that are safe in all four: no `/`, `+`, `#`, spaces.
 */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}
