/** The scrypt hash format lives in shared so `edgemeter-provision bundle` writes exactly what the status page verifies. */
export { hashPassword, type ParsedHash, parsePasswordHash, verifyPassword } from "@edgemeter/shared/core";
