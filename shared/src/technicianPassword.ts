import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from "node:crypto";
import { EdgemeterError } from "./errors.js";

/**
 * One implementation for both sides: `edgemeter-provision bundle` writes the hash onto the SD
 * card, the gateway's status page (and its `hash-password` command) read and verify it.
 *
 * The technician password is stored only as a scrypt hash (RFC 7914), in the self-describing
 * form `scrypt$N$r$p$salt$hash` (base64url), so the parameters can be raised later without
 * invalidating stored hashes. N=2^15, r=8, p=1 follows OWASP's password storage cheat sheet
 * (https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#scrypt)
 * and takes ~50-100 ms on a Raspberry Pi 4: slow for a guesser, fine for one login.
 */
const DEFAULT_PARAMS = { N: 32_768, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** scrypt needs 128·N·r bytes; Node's default maxmem (32 MiB) is just too small for N=2^15, r=8. */
const MAX_MEM_BYTES = 64 * 1024 * 1024;

function scryptAsync(password: string, salt: Buffer, keyBytes: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyBytes, options, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

export async function hashPassword(
  password: string,
  params: { N: number; r: number; p: number } = DEFAULT_PARAMS,
): Promise<string> {
  if (password.length === 0) throw new EdgemeterError("config.invalid", "the password must not be empty");
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(password, salt, KEY_BYTES, { ...params, maxmem: MAX_MEM_BYTES });
  return ["scrypt", params.N, params.r, params.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

export interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

/** @throws EdgemeterError `config.invalid` naming `where` when the text is not a hash made by hashPassword. */
export function parsePasswordHash(text: string, where: string): ParsedHash {
  const parts = text.trim().split("$");
  const [scheme, n, r, p, salt, key] = parts;
  const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : Number.NaN);
  const parsed = { N: num(n), r: num(r), p: num(p) };
  if (
    parts.length !== 6 ||
    scheme !== "scrypt" ||
    !Number.isInteger(Math.log2(parsed.N)) ||
    parsed.N < 2 ||
    !(parsed.r >= 1) ||
    !(parsed.p >= 1) ||
    salt === undefined ||
    key === undefined ||
    salt.length === 0 ||
    key.length === 0
  ) {
    throw new EdgemeterError(
      "config.invalid",
      `${where}: not a password hash (expected scrypt$N$r$p$salt$hash as written by \`edgemeter-gateway hash-password\` or \`edgemeter-provision bundle\`)`,
    );
  }
  return { ...parsed, salt: Buffer.from(salt, "base64url"), key: Buffer.from(key, "base64url") };
}

/** Constant-time comparison of the derived key (timingSafeEqual). */
export async function verifyPassword(password: string, hash: ParsedHash): Promise<boolean> {
  const key = await scryptAsync(password, hash.salt, hash.key.length, {
    N: hash.N,
    r: hash.r,
    p: hash.p,
    maxmem: MAX_MEM_BYTES,
  });
  return key.length === hash.key.length && timingSafeEqual(key, hash.key);
}
