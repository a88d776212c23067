import { readFileSync } from "node:fs";

/** The gateway's version from its package.json (reported in the online status). */
export const GATEWAY_VERSION: string = (() => {
  try {
    // Resolves from both src/ (vitest) and dist/ (the built daemon): each sits beside package.json.
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version?: unknown };
    return typeof pkg.version === "string" ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
})();
