import { access } from "node:fs/promises";
import { isIP } from "node:net";
import { EdgemeterError, isValidId } from "@edgemeter/shared";
import { loadCa } from "./ca.js";
import { generateKeyPair, privateKeyToPem, randomSerialNumber, SIGNING_ALGORITHM } from "./keys.js";
import { type CertificateKind, type CertificatePaths, certificatePaths } from "./layout.js";
import { writePrivateFile } from "./secretFiles.js";
import { checkValidityDays, validityWindow } from "./validity.js";
import { x509 } from "./x509.js";

export const DEFAULT_CERTIFICATE_VALIDITY_DAYS = 730;
export const DEFAULT_SERVER_DNS_NAMES: readonly string[] = ["localhost"];
export const DEFAULT_SERVER_IP_ADDRESSES: readonly string[] = ["127.0.0.1", "::1"];

/** The subject OU per kind: lets a broker or the cloud tell a gateway from a service by certificate alone. */
const ORGANIZATIONAL_UNIT: Record<CertificateKind, string> = {
  gateway: "gateway",
  client: "service",
  server: "server",
};

// RFC 1123 labels; a leading "*." wildcard is allowed for server certificates.
const DNS_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const DNS_NAME_PATTERN = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

export interface IssueCertificateOptions {
  kind: CertificateKind;
  /**
   * gateway: the gateway id (it becomes the CN, the MQTT username and the topic root);
   * client: the service name (e.g. `cloud-ingest`); server: the server's name, also added
   * as a DNS name when it is a host name. Always 1-64 of `A-Z a-z 0-9 . _ -`.
   */
  name: string;
  /** Default 730 days; may not outlive the CA. */
  validityDays?: number;
  /** Server only; default ["localhost"]. */
  dnsNames?: readonly string[];
  /** Server only; default ["127.0.0.1", "::1"]. */
  ipAddresses?: readonly string[];
  /** Replace an existing certificate and key of the same kind and name. */
  force?: boolean;
}

export interface IssuedCertificate extends CertificatePaths {
  kind: CertificateKind;
  name: string;
  /** Lower-case hex. */
  serialNumber: string;
  notAfter: Date;
}

function invalid(message: string): EdgemeterError {
  return new EdgemeterError("pki.invalid", message);
}

function checkName(kind: CertificateKind, name: string): void {
  if (!isValidId(name)) {
    throw invalid(
      `${kind} name ${JSON.stringify(name)}: must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
}

interface SubjectAltNames {
  dnsNames: string[];
  ipAddresses: string[];
}

function serverAltNames(name: string, options: IssueCertificateOptions): SubjectAltNames {
  const requestedDns = options.dnsNames ?? DEFAULT_SERVER_DNS_NAMES;
  // Clients check the SAN, not the CN (RFC 6125 §6.4.4), so a server named like a host
  // gets that host name as a SAN too; otherwise `--server mqtt.example.com` would not verify.
  const dnsNames = [...new Set([...(DNS_NAME_PATTERN.test(name) ? [name] : []), ...requestedDns])];
  for (const dnsName of dnsNames) {
    if (dnsName.length > 253 || !DNS_NAME_PATTERN.test(dnsName)) {
      throw invalid(`server ${name}: DNS name ${JSON.stringify(dnsName)} is not a valid host name`);
    }
  }
  const ipAddresses = [...new Set(options.ipAddresses ?? DEFAULT_SERVER_IP_ADDRESSES)];
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw invalid(`server ${name}: ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
  }
  return { dnsNames, ipAddresses };
}

async function exists(filePath: string): Promise<boolean> {
  try {
    await access(filePath);
    return true;
  } catch {
    return false;
  }
}

/**
 * Issues an ECDSA P-256 certificate signed by the CA in `pkiDir` and writes
 * `<pkiDir>/<kind>s/<name>/{key.pem,cert.pem,ca.pem}` (all 0600).
 * - gateway: CN = gateway id, OU = gateway, EKU clientAuth.
 * - client: CN = name, OU = service, EKU clientAuth.
 * - server: CN = name, OU = server, SAN DNS + IP, EKU serverAuth.
 * @throws EdgemeterError `pki.invalid` (bad name, SAN, validity), `pki.noCa` (no CA in
 *   `pkiDir`), `pki.exists` (already issued and no `force`), `pki.io` (cannot write).
 */
export async function issueCertificate(pkiDir: string, options: IssueCertificateOptions): Promise<IssuedCertificate> {
  const { kind, name } = options;
  checkName(kind, name);
  const days = checkValidityDays(options.validityDays ?? DEFAULT_CERTIFICATE_VALIDITY_DAYS, `${kind} ${name}`);
  if (kind !== "server" && (options.dnsNames !== undefined || options.ipAddresses !== undefined)) {
    throw invalid(`${kind} ${name}: DNS names and IP addresses apply to server certificates only`);
  }
  const altNames = kind === "server" ? serverAltNames(name, options) : undefined;

  const ca = await loadCa(pkiDir);
  const { notBefore, notAfter } = validityWindow(Date.now(), days);
  if (notAfter > ca.certificate.notAfter) {
    throw invalid(
      `${kind} ${name}: ${days} days would outlive the CA, which expires ${ca.certificate.notAfter.toISOString()}`,
    );
  }
  const paths = certificatePaths(pkiDir, kind, name);
  if (options.force !== true && (await exists(paths.keyPath))) {
    throw new EdgemeterError(
      "pki.exists",
      `${paths.dir}: a ${kind} certificate for ${name} already exists; use force to replace it`,
      {
        context: { kind, name },
      },
    );
  }

  const keys = await generateKeyPair();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    // ECDSA keys only sign during the handshake: digitalSignature is the one usage needed.
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(
      [kind === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    // Key id of the CA's subjectKeyIdentifier: lets OpenSSL pick the right issuer after a CA rollover.
    await x509.AuthorityKeyIdentifierExtension.create(ca.certificate.publicKey),
  ];
  if (altNames !== undefined) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        ...altNames.dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...altNames.ipAddresses.map((value) => ({ type: "ip" as const, value })),
      ]),
    );
  }
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: [{ CN: [name] }, { OU: [ORGANIZATIONAL_UNIT[kind]] }],
    issuer: ca.certificate.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.signingKey,
    extensions,
  });

  await writePrivateFile(paths.keyPath, await privateKeyToPem(keys.privateKey));
  await writePrivateFile(paths.certPath, `${certificate.toString("pem")}\n`);
  await writePrivateFile(paths.caPath, ca.certificatePem);
  return { ...paths, kind, name, serialNumber: certificate.serialNumber, notAfter: certificate.notAfter };
}
