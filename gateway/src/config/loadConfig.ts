import { accessSync, constants, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { loadProfile, type MeterProfile } from "@edgemeter/hardware";
import { EdgemeterError, formatInputIssues, type InputIssue, toInputIssues } from "@edgemeter/shared";
import { parseDocument } from "yaml";
import { type GatewayConfig, GatewayConfigSchema, TLS_URL_PROTOCOLS } from "./schema.js";

export interface LoadConfigOptions {
  /** Loads (and so checks) a profile; defaults to @edgemeter/hardware's loadProfile. */
  loadProfile?: (idOrPath: string) => MeterProfile;
}

/**
 * Reads, validates and resolves `gateway.yaml`. Relative paths (dataDir, TLS files, profile
 * files) resolve against the config file's folder, so the daemon behaves the same whatever
 * its working directory (systemd starts it in /).
 *
 * @throws EdgemeterError `config.invalid` whose message lists every problem found, one per
 *   line as `file: path: message`; `context.issues` holds them as data.
 */
export function loadConfig(file: string, options: LoadConfigOptions = {}): GatewayConfig {
  const configFile = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(configFile, "utf8");
  } catch (error) {
    throw invalid([
      { where: configFile, path: "(root)", message: `cannot read the file: ${(error as Error).message}` },
    ]);
  }
  return parseConfig(text, configFile, options);
}

/** As loadConfig, for text already read; `configFile` locates relative paths and names the source in messages. */
export function parseConfig(text: string, configFile: string, options: LoadConfigOptions = {}): GatewayConfig {
  const baseDir = path.dirname(configFile);
  const document = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (document.errors.length > 0) {
    throw invalid(
      document.errors.map((error) => ({
        where: configFile,
        path: "(root)",
        message: `YAML: ${error.message.replace(/\s+/g, " ")}`,
      })),
    );
  }
  const raw: unknown = document.toJS();
  const result = GatewayConfigSchema.safeParse(raw);
  const issues: InputIssue[] = result.success ? [] : toInputIssues(configFile, result.error.issues);
  // Cross-field checks run on the raw document even when the schema failed, so one run
  // reports every problem instead of revealing them one fix at a time.
  const profiles = new Map<string, MeterProfile>();
  issues.push(...crossCheck(raw, configFile, baseDir, options.loadProfile ?? loadProfile, profiles));
  if (!result.success || issues.length > 0) throw invalid(issues);

  const config = result.data;
  const resolve = (p: string) => path.resolve(baseDir, p);
  const uplink = { ...config.uplink, clientId: config.uplink.clientId ?? config.gatewayId };
  for (const key of ["caFile", "certFile", "keyFile"] as const) {
    const value = uplink[key];
    if (value !== undefined) uplink[key] = resolve(value);
  }
  return {
    ...config,
    configFile,
    dataDir: resolve(config.dataDir),
    uplink,
    ...(config.status === undefined
      ? {}
      : { status: { ...config.status, passwordHashFile: resolve(config.status.passwordHashFile) } }),
    buses: config.buses.map((bus) => ({
      ...bus,
      meters: bus.meters.map((meter) => ({ ...meter, profile: resolveProfileRef(meter.profile, baseDir) })),
    })),
    profiles: Object.fromEntries(profiles),
  };
}

function invalid(issues: InputIssue[]): EdgemeterError {
  return new EdgemeterError("config.invalid", formatInputIssues(issues), { context: { issues } });
}

/** Same rule as hardware's loadProfile: anything with a slash or a .yaml ending is a path. */
function isProfilePath(ref: string): boolean {
  return ref.includes("/") || ref.includes(path.sep) || /\.ya?ml$/.test(ref);
}

function resolveProfileRef(ref: string, baseDir: string): string {
  return isProfilePath(ref) ? path.resolve(baseDir, ref) : ref;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function crossCheck(
  raw: unknown,
  where: string,
  baseDir: string,
  checkProfile: (idOrPath: string) => MeterProfile,
  profiles: Map<string, MeterProfile>,
): InputIssue[] {
  const issues: InputIssue[] = [];
  if (!isRecord(raw)) return issues;
  const issue = (issuePath: string, message: string) => issues.push({ where, path: issuePath, message });

  const uplink = raw.uplink;
  if (isRecord(uplink)) {
    const tls =
      typeof uplink.url === "string" && URL.canParse(uplink.url) && TLS_URL_PROTOCOLS.has(new URL(uplink.url).protocol);
    // The AWS IoT SDK speaks MQTT over mTLS only (issue 4).
    if (uplink.kind === "awsIot" && typeof uplink.url === "string" && !uplink.url.startsWith("mqtts://"))
      issue("uplink.url", `must be mqtts://<endpoint>:8883 for kind "awsIot" (mTLS), not ${uplink.url}`);
    for (const key of ["caFile", "certFile", "keyFile"]) {
      const value = uplink[key];
      if (tls && value === undefined)
        issue(`uplink.${key}`, `required for a TLS url (${String(uplink.url)}): mTLS needs it`);
      if (typeof value !== "string" || value === "") continue;
      const resolved = path.resolve(baseDir, value);
      try {
        accessSync(resolved, constants.R_OK);
        if (!statSync(resolved).isFile()) issue(`uplink.${key}`, `${resolved} is not a file`);
      } catch (error) {
        issue(`uplink.${key}`, `cannot read ${resolved}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      }
    }
  }

  if (typeof raw.dataDir === "string" && raw.dataDir !== "") {
    const resolved = path.resolve(baseDir, raw.dataDir);
    try {
      if (!statSync(resolved).isDirectory()) issue("dataDir", `${resolved} exists and is not a directory`);
    } catch {
      // Missing is fine: the outbox creates it.
    }
  }

  const busIds = new Map<string, string>();
  const meterIds = new Map<string, string>();
  const profileResults = new Map<string, string | null>();
  asArray(raw.buses).forEach((bus, busIndex) => {
    if (!isRecord(bus)) return;
    const busPath = `buses.${busIndex}`;
    if (typeof bus.id === "string") {
      const first = busIds.get(bus.id);
      if (first !== undefined) issue(`${busPath}.id`, `duplicate bus id "${bus.id}" (first used at ${first})`);
      else busIds.set(bus.id, `${busPath}.id`);
    }
    const unitIds = new Map<number, string>();
    asArray(bus.meters).forEach((meter, meterIndex) => {
      if (!isRecord(meter)) return;
      const meterPath = `${busPath}.meters.${meterIndex}`;
      if (typeof meter.id === "string") {
        const first = meterIds.get(meter.id);
        if (first !== undefined) issue(`${meterPath}.id`, `duplicate meter id "${meter.id}" (first used at ${first})`);
        else meterIds.set(meter.id, `${meterPath}.id`);
      }
      if (typeof meter.unitId === "number") {
        const first = unitIds.get(meter.unitId);
        if (first !== undefined) {
          issue(
            `${meterPath}.unitId`,
            `duplicate unit id ${meter.unitId} on bus ${String(bus.id)} (first used at ${first})`,
          );
        } else unitIds.set(meter.unitId, `${meterPath}.unitId`);
      }
      if (typeof meter.profile === "string" && meter.profile !== "") {
        const ref = resolveProfileRef(meter.profile, baseDir);
        if (!profileResults.has(ref)) {
          try {
            profiles.set(ref, checkProfile(ref));
            profileResults.set(ref, null);
          } catch (error) {
            profileResults.set(ref, error instanceof Error ? error.message : String(error));
          }
        }
        const problem = profileResults.get(ref);
        if (problem !== null && problem !== undefined) issue(`${meterPath}.profile`, problem.replace(/\n/g, "; "));
      }
    });
  });
  return issues;
}
