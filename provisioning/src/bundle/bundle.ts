import { randomBytes } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import path from "node:path";
import { EdgemeterError, GatewayId, hashPassword } from "@edgemeter/shared";
import { issueCertificate } from "../pki/issue.js";
import { certificatePaths } from "../pki/layout.js";
import { writePrivateFile } from "../pki/secretFiles.js";
import { gatewayConfigSkeleton } from "./gatewayYaml.js";

/** The files of a bundle, named as `gateway.yaml` refers to them (relative to its own folder). */
export const BUNDLE_FILES = {
  config: "gateway.yaml",
  key: "key.pem",
  cert: "cert.pem",
  ca: "ca.pem",
  passwordHash: "technician-password.scrypt",
} as const;

export const DEFAULT_BROKER_URL = "mqtts://localhost:8883";
/** Shortest technician password accepted from --password-file: it guards a page on the cabinet's LAN. */
export const MIN_PASSWORD_LENGTH = 8;
/** 12 random bytes = 96 bits, 16 base64url characters: unguessable, still typeable on a phone. */
const GENERATED_PASSWORD_BYTES = 12;

export interface BundleOptions {
  pkiDir: string;
  gatewayId: string;
  outDir: string;
  brokerUrl?: string;
  protocolVersion?: 4 | 5;
  /** Not given: one is generated and returned (once; only its hash is written). */
  password?: string;
  /** Replace the files of an existing bundle in outDir. */
  force?: boolean;
}

export interface WrittenBundle {
  outDir: string;
  files: { [K in keyof typeof BUNDLE_FILES]: string };
  /** True when the gateway certificate did not exist and was issued now. */
  issuedCertificate: boolean;
  /** The generated password, when none was given: shown once, stored nowhere in clear. */
  generatedPassword?: string;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** First line of the file, without its line ending (so `echo secret > f` works). */
export async function readPasswordFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new EdgemeterError(
      "pki.invalid",
      `${file}: cannot read the technician password: ${(error as Error).message}`,
    );
  }
  const password = text.split(/\r?\n/)[0] ?? "";
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new EdgemeterError(
      "pki.invalid",
      `${file}: the technician password on its first line must be at least ${MIN_PASSWORD_LENGTH} characters`,
    );
  }
  return password;
}

/**
 * Writes what goes onto a gateway's SD card (e.g. into /etc/edgemeter/, the systemd unit's
 * ConfigurationDirectory): its mTLS key, certificate and CA, the technician password as a scrypt
 * hash only, and a gateway.yaml with the uplink filled in. Every file is 0600 (key and hash are
 * secrets; one rule for all). Issues the gateway certificate first if the PKI has none.
 * @throws EdgemeterError `pki.invalid` (bad id, URL, protocol, password), `pki.exists` (a bundle
 *   is already in outDir and no `force`), `pki.noCa`, `pki.io`.
 */
export async function writeBundle(options: BundleOptions): Promise<WrittenBundle> {
  const id = GatewayId.safeParse(options.gatewayId);
  if (!id.success) {
    throw new EdgemeterError(
      "pki.invalid",
      `--gateway ${JSON.stringify(options.gatewayId)}: not a gateway id (${id.error.issues[0]?.message ?? "invalid"})`,
    );
  }
  const brokerUrl = options.brokerUrl ?? DEFAULT_BROKER_URL;
  if (!URL.canParse(brokerUrl) || new URL(brokerUrl).protocol !== "mqtts:") {
    throw new EdgemeterError(
      "pki.invalid",
      `--broker-url ${JSON.stringify(brokerUrl)}: must be mqtts://host:port (the bundle's certificate is for mTLS)`,
    );
  }
  const protocolVersion = options.protocolVersion ?? 5;
  if (protocolVersion !== 4 && protocolVersion !== 5) {
    throw new EdgemeterError("pki.invalid", `--protocol ${String(protocolVersion)}: must be 5 (MQTT 5) or 4 (3.1.1)`);
  }
  if (options.password !== undefined && options.password.length < MIN_PASSWORD_LENGTH) {
    throw new EdgemeterError(
      "pki.invalid",
      `the technician password must be at least ${MIN_PASSWORD_LENGTH} characters`,
    );
  }

  const outDir = path.resolve(options.outDir);
  const files = Object.fromEntries(
    Object.entries(BUNDLE_FILES).map(([key, name]) => [key, path.join(outDir, name)]),
  ) as WrittenBundle["files"];
  if (options.force !== true) {
    const present: string[] = [];
    for (const file of Object.values(files)) if (await exists(file)) present.push(path.basename(file));
    if (present.length > 0) {
      throw new EdgemeterError(
        "pki.exists",
        `${outDir}: already holds a bundle (${present.join(", ")}); pass --force to replace it`,
        { context: { outDir } },
      );
    }
  }

  const source = certificatePaths(options.pkiDir, "gateway", id.data);
  let issuedCertificate = false;
  if (!(await exists(source.certPath))) {
    await issueCertificate(options.pkiDir, { kind: "gateway", name: id.data });
    issuedCertificate = true;
  }
  const [key, cert, ca] = await Promise.all(
    [source.keyPath, source.certPath, source.caPath].map(async (file) => {
      try {
        return await readFile(file, "utf8");
      } catch (error) {
        throw new EdgemeterError("pki.io", `${file}: cannot read: ${(error as Error).message}`, { cause: error });
      }
    }),
  );

  const generatedPassword =
    options.password === undefined ? randomBytes(GENERATED_PASSWORD_BYTES).toString("base64url") : undefined;
  const passwordHash = await hashPassword(options.password ?? generatedPassword ?? "");

  await writePrivateFile(files.key, key ?? "");
  await writePrivateFile(files.cert, cert ?? "");
  await writePrivateFile(files.ca, ca ?? "");
  await writePrivateFile(files.passwordHash, `${passwordHash}\n`);
  // The config last: its presence means the bundle is complete.
  await writePrivateFile(
    files.config,
    gatewayConfigSkeleton({ gatewayId: id.data, brokerUrl, protocolVersion, files: BUNDLE_FILES }),
  );
  return { outDir, files, issuedCertificate, ...(generatedPassword === undefined ? {} : { generatedPassword }) };
}
