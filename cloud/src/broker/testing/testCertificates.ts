/**
 * Test-only: a throwaway PKI made with the `openssl` CLI (ECDSA P-256), shaped like what the
 * provisioning CLI issues (gateway: CN=gatewayId OU=gateway; cloud service: CN=name OU=service).
 * The cloud must not import the provisioning package, so it makes its own.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";

export interface TestCertificate {
  certFile: string;
  keyFile: string;
}

export interface TestAuthority {
  caFile: string;
  keyFile: string;
  /** Issues a client certificate (EKU clientAuth) with this subject. */
  issueClient(name: string, subject: { cn: string; ou: string }): TestCertificate;
  /** Issues a server certificate (EKU serverAuth) with SAN IP:127.0.0.1 and DNS:localhost. */
  issueServer(name: string): TestCertificate;
  /** Revokes `certificate` and writes a fresh CRL holding every revocation so far. */
  revoke(certificate: TestCertificate): string;
}

function openssl(args: string[], cwd: string): void {
  const result = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(
      `openssl ${args.join(" ")} failed: ${result.stderr || result.error?.message || `exit ${result.status}`}`,
    );
  }
}

function newKey(dir: string, file: string): void {
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", file], dir);
}

/** Creates a CA named `name` in `dir` (files prefixed with `name`). */
export function createTestAuthority(dir: string, name: string): TestAuthority {
  const caKey = path.join(dir, `${name}-ca.key`);
  const caFile = path.join(dir, `${name}-ca.pem`);
  newKey(dir, caKey);
  openssl(
    [
      "req",
      "-x509",
      "-new",
      "-key",
      caKey,
      "-sha256",
      "-days",
      "2",
      "-subj",
      `/O=edgemeter test/CN=${name} test CA`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
      "-out",
      caFile,
    ],
    dir,
  );

  // `openssl ca` keeps revocations in a text database; only revoke() and the CRL use it.
  const caConfig = path.join(dir, `${name}-ca.cnf`);
  writeFileSync(path.join(dir, `${name}-index.txt`), "");
  writeFileSync(path.join(dir, `${name}-crlnumber`), "01\n");
  writeFileSync(
    caConfig,
    [
      "[ca]",
      "default_ca = test_ca",
      "[test_ca]",
      `database = ${path.join(dir, `${name}-index.txt`)}`,
      `crlnumber = ${path.join(dir, `${name}-crlnumber`)}`,
      `certificate = ${caFile}`,
      `private_key = ${caKey}`,
      "default_md = sha256",
      "default_crl_days = 2",
      "",
    ].join("\n"),
  );

  let serial = 0x1000;
  function issue(file: string, subject: string, extensions: string[]): TestCertificate {
    const keyFile = path.join(dir, `${file}.key`);
    const certFile = path.join(dir, `${file}.pem`);
    const csrFile = path.join(dir, `${file}.csr`);
    const extFile = path.join(dir, `${file}.ext`);
    newKey(dir, keyFile);
    openssl(["req", "-new", "-key", keyFile, "-subj", subject, "-out", csrFile], dir);
    writeFileSync(
      extFile,
      `${["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature", ...extensions].join("\n")}\n`,
    );
    serial += 1;
    openssl(
      [
        "x509",
        "-req",
        "-in",
        csrFile,
        "-CA",
        caFile,
        "-CAkey",
        caKey,
        "-set_serial",
        String(serial),
        "-days",
        "2",
        "-sha256",
        "-extfile",
        extFile,
        "-out",
        certFile,
      ],
      dir,
    );
    return { certFile, keyFile };
  }

  return {
    caFile,
    keyFile: caKey,
    issueClient: (file, subject) => issue(file, `/OU=${subject.ou}/CN=${subject.cn}`, ["extendedKeyUsage=clientAuth"]),
    issueServer: (file) =>
      issue(file, "/CN=localhost", ["extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"]),
    revoke(certificate) {
      const crlFile = path.join(dir, `${name}-crl.pem`);
      openssl(["ca", "-config", caConfig, "-revoke", certificate.certFile], dir);
      openssl(["ca", "-config", caConfig, "-gencrl", "-out", crlFile], dir);
      return crlFile;
    },
  };
}
