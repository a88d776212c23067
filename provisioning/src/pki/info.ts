import { EdgemeterError } from "@edgemeter/shared";
import { x509 } from "./x509.js";

export interface CertificateInfo {
  commonName: string;
  /** undefined when the subject has no OU. */
  organizationalUnit: string | undefined;
  /** Lower-case hex. */
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
  /** Issuer distinguished name, RFC 4514 string (e.g. `CN=edgemeter demo CA, OU=edgemeter`). */
  issuer: string;
  /** Subject distinguished name, RFC 4514 string. */
  subject: string;
  isCa: boolean;
  /** Extended key usages by name where known (`serverAuth`, `clientAuth`), else OID. */
  extendedKeyUsages: string[];
  dnsNames: string[];
  ipAddresses: string[];
}

const EKU_NAMES = new Map<string, string>(Object.entries(x509.ExtendedKeyUsage).map(([key, oid]) => [oid, key]));

/**
 * Reads the facts of a PEM certificate that provisioning, status pages and tests need.
 * @throws EdgemeterError `pki.invalid` when `certPem` is not a PEM or DER-in-PEM certificate.
 */
export function readCertificateInfo(certPem: string): CertificateInfo {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(certPem);
  } catch (error) {
    throw new EdgemeterError("pki.invalid", `not a PEM certificate: ${(error as Error).message}`, { cause: error });
  }
  const subject = certificate.subjectName;
  const basic = certificate.getExtension(x509.BasicConstraintsExtension);
  const eku = certificate.getExtension(x509.ExtendedKeyUsageExtension);
  const san = certificate.getExtension(x509.SubjectAlternativeNameExtension);
  const sanItems = san?.names.items ?? [];
  return {
    commonName: subject.getField("CN")[0] ?? "",
    organizationalUnit: subject.getField("OU")[0],
    serialNumber: certificate.serialNumber,
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    issuer: certificate.issuer,
    subject: certificate.subject,
    isCa: basic?.ca ?? false,
    // Array.from: `usages` is an ASN.1 array subclass whose map() would return that subclass.
    extendedKeyUsages: Array.from(eku?.usages ?? [], (usage) => EKU_NAMES.get(String(usage)) ?? String(usage)),
    dnsNames: sanItems.filter((item) => item.type === "dns").map((item) => item.value),
    ipAddresses: sanItems.filter((item) => item.type === "ip").map((item) => item.value),
  };
}
