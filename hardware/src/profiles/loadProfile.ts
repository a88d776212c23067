import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { EdgemeterError } from "@edgemeter/shared";
import { type MeterProfile, parseProfileYaml } from "./profileSchema.js";

/**
 * `hardware/profiles/`, found from this module's own location: src/profiles/ and
 * dist/profiles/ sit at the same depth, so this works from sources (vitest) and from the
 * compiled package alike, whatever the working directory.
 */
export const PROFILES_DIR = fileURLToPath(new URL("../../profiles/", import.meta.url));

const PROFILE_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * Ids of the profiles shipped in hardware/profiles, sorted. Files starting with `_`
 * (the documented template) are not profiles.
 */
export function listProfiles(): string[] {
  return readdirSync(PROFILES_DIR)
    .filter((name) => name.endsWith(".yaml") && !name.startsWith("_"))
    .map((name) => name.slice(0, -".yaml".length))
    .sort();
}

function readProfileFile(file: string, expectedId: string | null): MeterProfile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new EdgemeterError("profile.notFound", `${file}: cannot read meter profile: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const profile = parseProfileYaml(text, file);
  if (expectedId !== null && profile.id !== expectedId) {
    // Profiles are looked up by id: a mismatch would make one unreachable under its own name.
    throw new EdgemeterError("profile.invalid", `${file}: id: must equal the file name "${expectedId}"`, {
      context: { source: file },
    });
  }
  return profile;
}

/**
 * Loads one profile: `idOrPath` is either the id of a shipped profile (`sdm630` →
 * hardware/profiles/sdm630.yaml) or a path to a YAML file (anything with a `/` or a
 * `.yaml`/`.yml` ending). Throws EdgemeterError `profile.notFound` or `profile.invalid`.
 */
export function loadProfile(idOrPath: string): MeterProfile {
  const isPath = idOrPath.includes("/") || idOrPath.includes(path.sep) || /\.ya?ml$/.test(idOrPath);
  if (isPath) return readProfileFile(path.resolve(idOrPath), null);
  if (!PROFILE_ID.test(idOrPath) || !listProfiles().includes(idOrPath)) {
    throw new EdgemeterError(
      "profile.notFound",
      `unknown meter profile ${JSON.stringify(idOrPath)}: known profiles are ${listProfiles().join(", ")} (or give the path of a .yaml file)`,
    );
  }
  return readProfileFile(path.join(PROFILES_DIR, `${idOrPath}.yaml`), idOrPath);
}

/** Every shipped profile, in id order. Throws on the first invalid one. */
export function loadAllProfiles(): MeterProfile[] {
  return listProfiles().map((id) => loadProfile(id));
}
