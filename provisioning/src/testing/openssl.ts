/**
 * Runs the real `openssl` command line on files the PKI wrote: the tool (and library)
 * Mosquitto verifies certificates with, so its verdict is the one that matters.
 * Test-only: nothing in a product path imports this.
 */
import { spawnSync } from "node:child_process";
import { findBinary } from "@edgemeter/shared/testing";

export const OPENSSL = findBinary("openssl");

export interface OpensslResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function openssl(args: readonly string[]): OpensslResult {
  if (OPENSSL === null) throw new Error("openssl is not installed");
  const result = spawnSync(OPENSSL, args, { encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `openssl x509 -text` of a PEM certificate file. */
export function certificateText(certPath: string): string {
  const result = openssl(["x509", "-in", certPath, "-noout", "-text"]);
  if (result.status !== 0) throw new Error(`openssl x509 failed: ${result.stderr}`);
  return result.stdout;
}

/** True when the private key file holds the key of the certificate's public key. */
export function keyMatchesCertificate(keyPath: string, certPath: string): boolean {
  const fromKey = openssl(["pkey", "-in", keyPath, "-pubout"]);
  const fromCert = openssl(["x509", "-in", certPath, "-noout", "-pubkey"]);
  return fromKey.status === 0 && fromCert.status === 0 && fromKey.stdout === fromCert.stdout && fromKey.stdout !== "";
}
