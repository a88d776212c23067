import path from "node:path";

/** What a certificate is for; decides its subject OU, extended key usage and folder. */
export type CertificateKind = "gateway" | "server" | "client";

export const CERTIFICATE_KINDS: readonly CertificateKind[] = ["gateway", "server", "client"];

/** Where the CA's files live under a PKI directory. */
export interface CaPaths {
  keyPath: string;
  certPath: string;
}

/** Where one issued certificate's files live under a PKI directory. */
export interface CertificatePaths {
  dir: string;
  keyPath: string;
  certPath: string;
  /** A copy of the CA certificate, so the folder is a complete bundle for one device. */
  caPath: string;
}

export function caPaths(pkiDir: string): CaPaths {
  return { keyPath: path.join(pkiDir, "ca.key.pem"), certPath: path.join(pkiDir, "ca.cert.pem") };
}

/** `<pkiDir>/<kind>s/<name>/{key,cert,ca}.pem`; `name` must already be a validated id. */
export function certificatePaths(pkiDir: string, kind: CertificateKind, name: string): CertificatePaths {
  const dir = path.join(pkiDir, `${kind}s`, name);
  return {
    dir,
    keyPath: path.join(dir, "key.pem"),
    certPath: path.join(dir, "cert.pem"),
    caPath: path.join(dir, "ca.pem"),
  };
}
