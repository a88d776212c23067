import { isEdgemeterError } from "@edgemeter/shared";
import { describe, expect, it } from "vitest";
import { hashPassword, parsePasswordHash, verifyPassword } from "./password.js";

describe("technician password hash (scrypt)", () => {
  it("verifies the right password and refuses others", async () => {
    const text = await hashPassword("cabinet 7");
    expect(text).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    const hash = parsePasswordHash(text, "hash.txt");
    await expect(verifyPassword("cabinet 7", hash)).resolves.toBe(true);
    await expect(verifyPassword("cabinet 8", hash)).resolves.toBe(false);
    await expect(verifyPassword("", hash)).resolves.toBe(false);
  });

  it("salts every hash, and honours the parameters stored in it", async () => {
    const cheap = { N: 1024, r: 8, p: 1 } as const;
    const a = await hashPassword("same", cheap);
    const b = await hashPassword("same", cheap);
    expect(a).not.toBe(b);
    expect(a.startsWith("scrypt$1024$8$1$")).toBe(true);
    await expect(verifyPassword("same", parsePasswordHash(b, "b"))).resolves.toBe(true);
  });

  it("names the file of a malformed hash", () => {
    for (const bad of ["", "secret", "scrypt$1000$8$1$abc$def", "bcrypt$10$8$1$abc$def", "scrypt$1024$8$1$$def"]) {
      try {
        parsePasswordHash(bad, "/etc/edgemeter/status.hash");
        expect.unreachable(bad);
      } catch (error) {
        expect(isEdgemeterError(error, "config.invalid")).toBe(true);
        expect((error as Error).message).toContain("/etc/edgemeter/status.hash: not a password hash");
      }
    }
  });

  it("refuses to hash an empty password", async () => {
    await expect(hashPassword("")).rejects.toThrow(/must not be empty/);
  });
});
