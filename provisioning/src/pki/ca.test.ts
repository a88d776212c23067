import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { isEdgemeterError } from "@edgemeter/shared";
import { requireService, tempDir } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { certificateText, keyMatchesCertificate, OPENSSL, openssl } from "../testing/openssl.js";
import { initCa } from "./ca.js";
import { readCertificateInfo } from "./info.js";

const hasOpenssl = requireService("openssl", OPENSSL !== null, "apt-get install openssl");

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => new Error("expected a rejection"),
    (error: unknown) => error,
  );
}

describe.skipIf(!hasOpenssl)("initCa", () => {
  const temps: (() => void)[] = [];
  afterEach(() => {
    for (const remove of temps.splice(0)) remove();
  });
  function freshDir(): string {
    const temp = tempDir("ca");
    temps.push(temp.remove);
    return path.join(temp.dir, "pki");
  }

  it("writes a self-signed P-256 CA with CA:true, keyCertSign+cRLSign and a key identifier, files 0600", async () => {
    const dir = freshDir();
    const ca = await initCa(dir, { commonName: "Stadtwerke Test CA", validityDays: 30 });

    expect(ca.keyPath).toBe(path.join(dir, "ca.key.pem"));
    expect(ca.certPath).toBe(path.join(dir, "ca.cert.pem"));
    for (const file of [ca.keyPath, ca.certPath]) expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o077).toBe(0);
    expect(readFileSync(ca.keyPath, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(keyMatchesCertificate(ca.keyPath, ca.certPath)).toBe(true);

    const text = certificateText(ca.certPath);
    expect(text).toContain("Subject: CN = Stadtwerke Test CA, OU = edgemeter");
    expect(text).toContain("Issuer: CN = Stadtwerke Test CA, OU = edgemeter");
    expect(text).toContain("ASN1 OID: prime256v1");
    expect(text).toContain("Signature Algorithm: ecdsa-with-SHA256");
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    expect(text).toContain("X509v3 Subject Key Identifier");
    // A self-signed CA verifies against itself.
    expect(openssl(["verify", "-x509_strict", "-CAfile", ca.certPath, ca.certPath]).status).toBe(0);

    const info = readCertificateInfo(readFileSync(ca.certPath, "utf8"));
    expect(info).toMatchObject({ commonName: "Stadtwerke Test CA", isCa: true, serialNumber: ca.serialNumber });
    expect(info.notAfter.getTime()).toBe(ca.notAfter.getTime());
    const validityDays = (info.notAfter.getTime() - info.notBefore.getTime()) / 86_400_000;
    expect(validityDays).toBeGreaterThan(30);
    expect(validityDays).toBeLessThan(31);
  });

  it("uses the default name and a positive 128-bit serial", async () => {
    const ca = await initCa(freshDir());
    expect(ca.commonName).toBe("edgemeter demo CA");
    expect(ca.serialNumber).toMatch(/^[4-7][0-9a-f]{31}$/);
  });

  it("refuses to overwrite an existing CA, and replaces it with force", async () => {
    const dir = freshDir();
    const first = await initCa(dir);
    const firstPem = readFileSync(first.certPath, "utf8");

    const error = await rejection(initCa(dir));
    expect(isEdgemeterError(error, "pki.exists")).toBe(true);
    expect((error as Error).message).toContain(dir);
    expect(readFileSync(first.certPath, "utf8")).toBe(firstPem);

    const second = await initCa(dir, { force: true });
    expect(second.serialNumber).not.toBe(first.serialNumber);
    expect(readFileSync(second.certPath, "utf8")).not.toBe(firstPem);
    expect(keyMatchesCertificate(second.keyPath, second.certPath)).toBe(true);
  });

  it("rejects an empty or over-long common name and impossible validities", async () => {
    const dir = freshDir();
    for (const options of [
      { commonName: " " },
      { commonName: "x".repeat(65) },
      { validityDays: 0 },
      { validityDays: 1.5 },
    ]) {
      const error = await rejection(initCa(dir, options));
      expect(isEdgemeterError(error, "pki.invalid"), JSON.stringify(options)).toBe(true);
    }
  });
});
