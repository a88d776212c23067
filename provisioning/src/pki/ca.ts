import { access, readFile } from "node:fs/promises";
import { EdgemeterError } from "@edgemeter/shared";
import { generateKeyPair, privateKeyFromPem, privateKeyToPem, randomSerialNumber, SIGNING_ALGORITHM } from "./keys.js";
import { type CaPaths, caPaths } from "./layout.js";
import { writePrivateFile } from "./secretFiles.js";
import { checkValidityDays, validityWindow } from "./validity.js";
import { type CryptoKey, x509 } from "./x509.js";

export const DEFAULT_CA_COMMON_NAME = "edgemeter demo CA";
export const DEFAULT_CA_VALIDITY_DAYS = 3_650;
/** X.520 upper bound for a commonName (RFC 5280 Appendix A, ub-common-name). */
const MAX_COMMON_NAME_LENGTH = 64;

export interface InitCaOptions {
  /** Subject CN of the CA; default "edgemeter demo CA". */
  commonName?: string;
  /** Default 3650 days. */
  validityDays?: number;
  /** Replace an existing CA. Every certificate it issued stops verifying. */
  force?: boolean;
}

export interface CaCertificate extends CaPaths {
  dir: string;
  commonName: string;
  /** Lower-case hex. */
  serialNumber: string;
  notAfter: Date;
}

/** A CA loaded for signing. */
export interface LoadedCa {
  paths: CaPaths;
  certificate: x509.X509Certificate;
  certificatePem: string;
  signingKey: CryptoKey;
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
 * Creates a self-signed ECDSA P-256 CA in `dir`: `ca.key.pem` (PKCS#8) and `ca.cert.pem`,
 * both mode 0600. The certificate carries basicConstraints CA:true (critical), keyUsage
 * keyCertSign+cRLSign (critical) and a subjectKeyIdentifier, which OpenSSL needs to build
 * chains and Node's tls needs to accept it as an issuer.
 * @throws EdgemeterError `pki.exists` when a CA is already there and `force` is not set;
 *   `pki.invalid` for a bad common name or validity; `pki.io` when a file cannot be written.
 */
export async function initCa(dir: string, options: InitCaOptions = {}): Promise<CaCertificate> {
  const commonName = options.commonName ?? DEFAULT_CA_COMMON_NAME;
  if (commonName.trim() === "" || commonName.length > MAX_COMMON_NAME_LENGTH) {
    throw new EdgemeterError(
      "pki.invalid",
      `CA common name: must be 1-${MAX_COMMON_NAME_LENGTH} characters, got ${JSON.stringify(commonName)}`,
    );
  }
  const days = checkValidityDays(options.validityDays ?? DEFAULT_CA_VALIDITY_DAYS, "CA");
  const paths = caPaths(dir);
  if (options.force !== true && ((await exists(paths.keyPath)) || (await exists(paths.certPath)))) {
    throw new EdgemeterError(
      "pki.exists",
      `${dir}: a CA already exists (ca.key.pem / ca.cert.pem); use force to replace it, which invalidates every certificate it issued`,
      { context: { dir } },
    );
  }

  const keys = await generateKeyPair();
  const { notBefore, notAfter } = validityWindow(Date.now(), days);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialNumber(),
    name: [{ CN: [commonName] }, { OU: ["edgemeter"] }],
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      // pathLength 0: this CA signs end-entity certificates only, never another CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });

  // Key first: a certificate without its key is useless, a key without certificate is harmless.
  await writePrivateFile(paths.keyPath, await privateKeyToPem(keys.privateKey));
  await writePrivateFile(paths.certPath, `${certificate.toString("pem")}\n`);
  return { dir, ...paths, commonName, serialNumber: certificate.serialNumber, notAfter: certificate.notAfter };
}

/**
 * Loads the CA in `dir` for signing.
 * @throws EdgemeterError `pki.noCa` when there is none; `pki.invalid` when its files are unreadable.
 */
export async function loadCa(dir: string): Promise<LoadedCa> {
  const paths = caPaths(dir);
  let certificatePem: string;
  let keyPem: string;
  try {
    certificatePem = await readFile(paths.certPath, "utf8");
    keyPem = await readFile(paths.keyPath, "utf8");
  } catch (error) {
    throw new EdgemeterError(
      "pki.noCa",
      `${dir}: no CA found (${(error as NodeJS.ErrnoException).code ?? "unreadable"}); create one with \`edgemeter-provision ca init --dir ${dir}\``,
      { cause: error, context: { dir } },
    );
  }
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(certificatePem);
  } catch (error) {
    throw new EdgemeterError("pki.invalid", `${paths.certPath}: not a PEM certificate`, { cause: error });
  }
  const signingKey = await privateKeyFromPem(keyPem, paths.keyPath);
  return { paths, certificate, certificatePem, signingKey };
}
