import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { isEdgemeterError } from "@edgemeter/shared";
import { requireService, tempDir } from "@edgemeter/shared/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certificateText, keyMatchesCertificate, OPENSSL, openssl } from "../testing/openssl.js";
import { initCa } from "./ca.js";
import { readCertificateInfo } from "./info.js";
import { type IssueCertificateOptions, issueCertificate } from "./issue.js";

const hasOpenssl = requireService("openssl", OPENSSL !== null, "apt-get install openssl");

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error("expected a rejection"),
    (error: unknown) => error,
  );
}

/** `openssl verify` with strict X.509 checks and the purpose a TLS peer would check. */
function verify(caPath: string, certPath: string, purpose: "sslclient" | "sslserver") {
  return openssl(["verify", "-x509_strict", "-purpose", purpose, "-CAfile", caPath, certPath]);
}

describe.skipIf(!hasOpenssl)("issueCertificate", () => {
  const temp = tempDir("issue");
  const pkiDir = path.join(temp.dir, "pki");
  let caCertPath: string;

  beforeAll(async () => {
    caCertPath = (await initCa(pkiDir, { validityDays: 1_000 })).certPath;
  });
  afterAll(() => temp.remove());

  it("issues a gateway certificate: CN = gateway id, OU = gateway, clientAuth, bundle 0600", async () => {
    const issued = await issueCertificate(pkiDir, { kind: "gateway", name: "gw-0042" });

    expect(issued.dir).toBe(path.join(pkiDir, "gateways", "gw-0042"));
    expect([issued.keyPath, issued.certPath, issued.caPath].map((file) => path.basename(file))).toEqual([
      "key.pem",
      "cert.pem",
      "ca.pem",
    ]);
    for (const file of [issued.keyPath, issued.certPath, issued.caPath]) {
      expect(statSync(file).mode & 0o777, file).toBe(0o600);
    }
    expect(readFileSync(issued.caPath, "utf8")).toBe(readFileSync(caCertPath, "utf8"));
    expect(keyMatchesCertificate(issued.keyPath, issued.certPath)).toBe(true);

    const verified = verify(issued.caPath, issued.certPath, "sslclient");
    expect(verified.stdout + verified.stderr).toContain(": OK");
    expect(verified.status).toBe(0);
    // clientAuth only: it must not pass as a server.
    expect(verify(issued.caPath, issued.certPath, "sslserver").status).not.toBe(0);

    const text = certificateText(issued.certPath);
    expect(text).toContain("Subject: CN = gw-0042, OU = gateway");
    expect(text).toContain("Issuer: CN = edgemeter demo CA, OU = edgemeter");
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: ?\n\s+TLS Web Client Authentication\n/);
    expect(text).toContain("X509v3 Authority Key Identifier");
    expect(text).not.toContain("Subject Alternative Name");

    const info = readCertificateInfo(readFileSync(issued.certPath, "utf8"));
    expect(info).toMatchObject({
      commonName: "gw-0042",
      organizationalUnit: "gateway",
      serialNumber: issued.serialNumber,
      issuer: "CN=edgemeter demo CA, OU=edgemeter",
      isCa: false,
      extendedKeyUsages: ["clientAuth"],
      dnsNames: [],
      ipAddresses: [],
    });
    expect(info.notAfter.getTime()).toBe(issued.notAfter.getTime());
    expect(Math.round((info.notAfter.getTime() - Date.now()) / 86_400_000)).toBe(730);
  });

  it("issues a cloud client certificate: OU = service, clientAuth", async () => {
    const issued = await issueCertificate(pkiDir, { kind: "client", name: "cloud-ingest", validityDays: 10 });
    expect(issued.dir).toBe(path.join(pkiDir, "clients", "cloud-ingest"));
    expect(verify(caCertPath, issued.certPath, "sslclient").status).toBe(0);
    expect(keyMatchesCertificate(issued.keyPath, issued.certPath)).toBe(true);
    const info = readCertificateInfo(readFileSync(issued.certPath, "utf8"));
    expect(info).toMatchObject({
      commonName: "cloud-ingest",
      organizationalUnit: "service",
      extendedKeyUsages: ["clientAuth"],
    });
  });

  it("issues a server certificate with default SANs localhost, 127.0.0.1, ::1 and serverAuth", async () => {
    const issued = await issueCertificate(pkiDir, { kind: "server", name: "broker" });
    expect(verify(caCertPath, issued.certPath, "sslserver").status).toBe(0);
    expect(verify(caCertPath, issued.certPath, "sslclient").status).not.toBe(0);
    const text = certificateText(issued.certPath);
    expect(text).toMatch(/X509v3 Extended Key Usage: ?\n\s+TLS Web Server Authentication\n/);
    expect(text).toContain("DNS:broker, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
    // OpenSSL's own host and IP checks, as a client library would do them.
    expect(openssl(["x509", "-in", issued.certPath, "-noout", "-checkhost", "localhost"]).stdout).toContain(
      "does match certificate",
    );
    expect(openssl(["x509", "-in", issued.certPath, "-noout", "-checkip", "::1"]).stdout).toContain(
      "does match certificate",
    );
    const info = readCertificateInfo(readFileSync(issued.certPath, "utf8"));
    expect(info).toMatchObject({
      commonName: "broker",
      organizationalUnit: "server",
      extendedKeyUsages: ["serverAuth"],
      dnsNames: ["broker", "localhost"],
      ipAddresses: ["127.0.0.1", "::1"],
    });
  });

  it("puts the given DNS names and IP addresses in a server certificate, and nothing else", async () => {
    const issued = await issueCertificate(pkiDir, {
      kind: "server",
      name: "mqtt.example.net",
      dnsNames: ["*.site.example.net"],
      ipAddresses: ["10.1.2.3", "fd00::1"],
    });
    const info = readCertificateInfo(readFileSync(issued.certPath, "utf8"));
    expect(info.dnsNames).toEqual(["mqtt.example.net", "*.site.example.net"]);
    expect(info.ipAddresses).toEqual(["10.1.2.3", "fd00::1"]);
    expect(certificateText(issued.certPath)).toContain("IP Address:10.1.2.3, IP Address:FD00:0:0:0:0:0:0:1");
  });

  it("refuses to replace an issued certificate unless forced", async () => {
    const first = await issueCertificate(pkiDir, { kind: "gateway", name: "gw-twice" });
    const firstKey = readFileSync(first.keyPath, "utf8");
    const error = await rejection(issueCertificate(pkiDir, { kind: "gateway", name: "gw-twice" }));
    expect(isEdgemeterError(error, "pki.exists")).toBe(true);
    expect(readFileSync(first.keyPath, "utf8")).toBe(firstKey);

    const second = await issueCertificate(pkiDir, { kind: "gateway", name: "gw-twice", force: true });
    expect(second.serialNumber).not.toBe(first.serialNumber);
    expect(readFileSync(second.keyPath, "utf8")).not.toBe(firstKey);
    expect(keyMatchesCertificate(second.keyPath, second.certPath)).toBe(true);
  });

  it("rejects an invalid gateway id before writing anything", async () => {
    for (const name of ["", "gw/01", "../gw", ".hidden", "gw 01", "gw+", "gw#", "g".repeat(65)]) {
      const error = await rejection(issueCertificate(pkiDir, { kind: "gateway", name }));
      expect(isEdgemeterError(error, "pki.invalid"), name).toBe(true);
      expect((error as Error).message, name).toContain(JSON.stringify(name));
    }
    expect(existsSync(path.join(pkiDir, "gateways", "gw"))).toBe(false);
    expect(existsSync(path.join(pkiDir, "hidden"))).toBe(false);
  });

  it("rejects bad SANs, SANs on a client certificate and a validity beyond the CA's", async () => {
    const cases: IssueCertificateOptions[] = [
      { kind: "server", name: "broker-bad-ip", ipAddresses: ["300.1.1.1"] },
      { kind: "server", name: "broker-bad-dns", dnsNames: ["bad_host"] },
      { kind: "gateway", name: "gw-with-san", dnsNames: ["localhost"] },
      { kind: "client", name: "svc-with-ip", ipAddresses: ["127.0.0.1"] },
      { kind: "gateway", name: "gw-forever", validityDays: 5_000 },
      { kind: "gateway", name: "gw-zero", validityDays: 0 },
    ];
    for (const options of cases) {
      const error = await rejection(issueCertificate(pkiDir, options));
      expect(isEdgemeterError(error, "pki.invalid"), options.name).toBe(true);
      expect(existsSync(path.join(pkiDir, `${options.kind}s`, options.name)), options.name).toBe(false);
    }
  });

  it("fails with pki.noCa, naming the command to run, when the directory has no CA", async () => {
    const empty = path.join(temp.dir, "empty");
    const error = await rejection(issueCertificate(empty, { kind: "gateway", name: "gw-01" }));
    expect(isEdgemeterError(error, "pki.noCa")).toBe(true);
    expect((error as Error).message).toContain("edgemeter-provision ca init");
  });

  it("issues certificates that a different CA does not verify", async () => {
    const otherDir = path.join(temp.dir, "other");
    const other = await initCa(otherDir, { commonName: "other CA" });
    const issued = await issueCertificate(pkiDir, { kind: "gateway", name: "gw-cross" });
    expect(verify(other.certPath, issued.certPath, "sslclient").status).not.toBe(0);
  });
});

describe("readCertificateInfo", () => {
  it("rejects text that is not a certificate", () => {
    expect(() => readCertificateInfo("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).toThrowError(
      /not a PEM certificate/,
    );
  });
});
