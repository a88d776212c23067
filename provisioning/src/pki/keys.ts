import { EdgemeterError } from "@edgemeter/shared";
import { type CryptoKey, type CryptoKeyPair, crypto, x509 } from "./x509.js";

/**
 * ECDSA on P-256 with SHA-256: supported by Node's tls, OpenSSL/Mosquitto, AWS IoT Core
 * and the TPM/secure elements a gateway might later keep its key in; small keys and fast
 * handshakes on a Raspberry Pi.
 */
export const KEY_ALGORITHM = { name: "ECDSA", namedCurve: "P-256" } as const;
export const SIGNING_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A fresh key pair; extractable because the private key is written to a PEM file. */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), which Node, OpenSSL 1.1+/3 and Mosquitto all read. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return `${x509.PemConverter.encode(der, "PRIVATE KEY")}\n`;
}

/**
 * Reads a PKCS#8 P-256 private key for signing.
 * @throws EdgemeterError `pki.invalid` when the PEM is not such a key (`where` names the file).
 */
export async function privateKeyFromPem(pem: string, where: string): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(pem);
    return await crypto.subtle.importKey("pkcs8", der, KEY_ALGORITHM, false, ["sign"]);
  } catch (error) {
    throw new EdgemeterError("pki.invalid", `${where}: not a PKCS#8 ECDSA P-256 private key`, { cause: error });
  }
}

/**
 * A random positive 128-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 octets; CA/B
 * Forum asks for 64+ random bits). The top bit is cleared so the DER INTEGER needs no
 * leading zero and is positive; the next bit is set so the serial always has 16 octets.
 */
export function randomSerialNumber(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return Buffer.from(bytes).toString("hex");
}
