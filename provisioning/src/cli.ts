#!/usr/bin/env node
/**
 * edgemeter-provision: creates the CA, issues gateway, server and client certificates, and
 * writes a gateway's SD-card bundle (certificates, technician password hash, gateway.yaml).
 * Exit codes: 0 success, 2 bad input (arguments, names, an existing CA or certificate, no
 * CA yet), 1 anything else (e.g. the file system refused).
 */
import { readFile } from "node:fs/promises";
import { describeError, isEdgemeterError } from "@edgemeter/shared";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { BUNDLE_FILES, DEFAULT_BROKER_URL, readPasswordFile, writeBundle } from "./bundle/bundle.js";
import { DEFAULT_CA_COMMON_NAME, initCa } from "./pki/ca.js";
import { readCertificateInfo } from "./pki/info.js";
import { type IssueCertificateOptions, issueCertificate } from "./pki/issue.js";
import type { CertificateKind } from "./pki/layout.js";

const DEFAULT_PKI_DIR = "./.edgemeter/pki";
const EXIT_FAILURE = 1;
const EXIT_BAD_INPUT = 2;
/** Errors the user can fix by changing the command line, as opposed to the machine failing. */
const BAD_INPUT_CODES = new Set(["pki.invalid", "pki.exists", "pki.noCa"]);

function parseDays(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("must be a whole number of days");
  return Number(value);
}

function parseList(value: string): string[] {
  return value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function parseProtocol(value: string): 4 | 5 {
  if (value === "5") return 5;
  if (value === "4") return 4;
  throw new InvalidArgumentError("must be 5 (MQTT 5) or 4 (MQTT 3.1.1)");
}

class UsageError extends Error {}

interface IssueFlags {
  gateway?: string;
  server?: string;
  client?: string;
  dns?: string[];
  ip?: string[];
  dir: string;
  days?: number;
  force?: boolean;
}

function issueOptionsFrom(flags: IssueFlags): IssueCertificateOptions {
  const chosen = (["gateway", "server", "client"] as const).filter((kind) => flags[kind] !== undefined);
  const kind: CertificateKind | undefined = chosen[0];
  if (chosen.length !== 1 || kind === undefined) {
    throw new UsageError("cert issue: give exactly one of --gateway ID, --server NAME, --client NAME");
  }
  if (kind !== "server" && (flags.dns !== undefined || flags.ip !== undefined)) {
    throw new UsageError("cert issue: --dns and --ip apply to --server only");
  }
  return {
    kind,
    name: flags[kind] ?? "",
    ...(flags.days === undefined ? {} : { validityDays: flags.days }),
    ...(flags.dns === undefined ? {} : { dnsNames: flags.dns }),
    ...(flags.ip === undefined ? {} : { ipAddresses: flags.ip }),
    ...(flags.force === undefined ? {} : { force: flags.force }),
  };
}

function buildProgram(): Command {
  const program = new Command("edgemeter-provision")
    .description("edgemeter provisioning: certificate authority and device certificates")
    // Commander exits 1 on a usage error; we want 2 (bad input), so it throws to us instead.
    .exitOverride()
    .showHelpAfterError();

  const ca = program.command("ca").description("the certificate authority");
  ca.command("init")
    .description("create an ECDSA P-256 CA: <dir>/ca.key.pem and <dir>/ca.cert.pem (mode 0600)")
    .option("--dir <dir>", "PKI directory", DEFAULT_PKI_DIR)
    .option("--cn <name>", "CA common name", DEFAULT_CA_COMMON_NAME)
    .option("--days <n>", "validity in days (default 3650)", parseDays)
    .option("--force", "replace an existing CA (every certificate it issued stops verifying)")
    .action(async (flags: { dir: string; cn: string; days?: number; force?: boolean }) => {
      const created = await initCa(flags.dir, {
        commonName: flags.cn,
        ...(flags.days === undefined ? {} : { validityDays: flags.days }),
        ...(flags.force === undefined ? {} : { force: flags.force }),
      });
      console.log(`created CA "${created.commonName}" in ${created.dir}`);
      console.log(`  key:     ${created.keyPath}  (keep secret, offline if you can)`);
      console.log(`  cert:    ${created.certPath}`);
      console.log(`  serial:  ${created.serialNumber}`);
      console.log(`  expires: ${created.notAfter.toISOString()}`);
    });

  const cert = program.command("cert").description("device and service certificates");
  cert
    .command("issue")
    .description("issue a certificate signed by the CA into <dir>/<kind>s/<name>/{key,cert,ca}.pem (mode 0600)")
    .addOption(new Option("--gateway <id>", "gateway certificate: CN = gateway id, EKU clientAuth"))
    .addOption(new Option("--server <name>", "server certificate (broker, API): EKU serverAuth"))
    .addOption(new Option("--client <name>", "cloud service certificate (e.g. cloud-ingest): EKU clientAuth"))
    .option("--dns <names>", "server only: comma-separated DNS names (default localhost)", parseList)
    .option("--ip <addresses>", "server only: comma-separated IP addresses (default 127.0.0.1,::1)", parseList)
    .option("--dir <dir>", "PKI directory", DEFAULT_PKI_DIR)
    .option("--days <n>", "validity in days (default 730)", parseDays)
    .option("--force", "replace an existing certificate of the same name")
    .action(async (flags: IssueFlags) => {
      const issued = await issueCertificate(flags.dir, issueOptionsFrom(flags));
      const info = readCertificateInfo(await readFile(issued.certPath, "utf8"));
      console.log(`issued ${issued.kind} certificate "${issued.name}" in ${issued.dir}`);
      console.log(`  key:     ${issued.keyPath}  (keep secret)`);
      console.log(`  cert:    ${issued.certPath}`);
      console.log(`  ca:      ${issued.caPath}`);
      console.log(`  subject: ${info.subject}`);
      if (info.dnsNames.length + info.ipAddresses.length > 0) {
        console.log(`  names:   ${[...info.dnsNames, ...info.ipAddresses].join(", ")}`);
      }
      console.log(`  serial:  ${issued.serialNumber}`);
      console.log(`  expires: ${issued.notAfter.toISOString()}`);
    });
  cert
    .command("show")
    .description("print the subject, issuer, validity and names of a PEM certificate")
    .argument("<file>", "PEM certificate")
    .action(async (file: string) => {
      let pem: string;
      try {
        pem = await readFile(file, "utf8");
      } catch (error) {
        throw new UsageError(`${file}: cannot read: ${describeError(error)}`);
      }
      let info: ReturnType<typeof readCertificateInfo>;
      try {
        info = readCertificateInfo(pem);
      } catch (error) {
        throw new UsageError(`${file}: ${describeError(error)}`);
      }
      console.log(
        JSON.stringify(
          { ...info, notBefore: info.notBefore.toISOString(), notAfter: info.notAfter.toISOString() },
          null,
          2,
        ),
      );
    });

  program
    .command("bundle")
    .description(
      "write a gateway's SD-card bundle into <out> (mode 0600): key.pem, cert.pem, ca.pem, " +
        "technician-password.scrypt and a gateway.yaml skeleton; issues the certificate if missing",
    )
    .requiredOption("--gateway <id>", "gateway id (the certificate's CN)")
    .requiredOption("--out <dir>", "bundle folder (copy it to /etc/edgemeter/ on the SD card)")
    .option("--dir <dir>", "PKI directory", DEFAULT_PKI_DIR)
    .option("--broker-url <url>", `the broker, mqtts://host:port (default ${DEFAULT_BROKER_URL})`)
    .option("--protocol <version>", "MQTT protocol version: 5, or 4 for brokers without MQTT 5", parseProtocol)
    .option("--password-file <file>", "technician password on the first line (default: generate one and print it once)")
    .option("--force", "replace an existing bundle in <out>")
    .action(
      async (flags: {
        gateway: string;
        out: string;
        dir: string;
        brokerUrl?: string;
        protocol?: 4 | 5;
        passwordFile?: string;
        force?: boolean;
      }) => {
        // The password comes from a file, never an argument: arguments end up in shell history and `ps`.
        const password = flags.passwordFile === undefined ? undefined : await readPasswordFile(flags.passwordFile);
        const bundle = await writeBundle({
          pkiDir: flags.dir,
          gatewayId: flags.gateway,
          outDir: flags.out,
          ...(flags.brokerUrl === undefined ? {} : { brokerUrl: flags.brokerUrl }),
          ...(flags.protocol === undefined ? {} : { protocolVersion: flags.protocol }),
          ...(password === undefined ? {} : { password }),
          ...(flags.force === undefined ? {} : { force: flags.force }),
        });
        console.log(`wrote the bundle of gateway "${flags.gateway}" to ${bundle.outDir}`);
        if (bundle.issuedCertificate) console.log(`  issued its certificate in ${flags.dir}`);
        console.log(`  ${BUNDLE_FILES.config}: add the meters, then \`edgemeter-gateway check-config\``);
        console.log(`  ${BUNDLE_FILES.key}, ${BUNDLE_FILES.cert}, ${BUNDLE_FILES.ca}: mTLS (keep the key secret)`);
        console.log(`  ${BUNDLE_FILES.passwordHash}: the technician password's scrypt hash`);
        if (bundle.generatedPassword !== undefined) {
          console.log(`technician-password: ${bundle.generatedPassword}`);
          console.log("  (shown once and stored nowhere: give it to the technicians now)");
        }
      },
    );
  return program;
}

async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv], { from: "node" });
    return 0;
  } catch (error) {
    // Commander has already printed its own message (and the help) to stderr.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_BAD_INPUT;
    if (error instanceof UsageError) {
      console.error(`edgemeter-provision: ${error.message}`);
      return EXIT_BAD_INPUT;
    }
    if (isEdgemeterError(error)) {
      console.error(`edgemeter-provision: ${error.message}`);
      return BAD_INPUT_CODES.has(error.code) ? EXIT_BAD_INPUT : EXIT_FAILURE;
    }
    // Not a user error: a bug or the machine failing; the stack helps whoever reports it.
    console.error("edgemeter-provision: unexpected error:", error);
    return EXIT_FAILURE;
  }
}

process.exitCode = await main(process.argv);
