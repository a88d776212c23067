import { EdgemeterError } from "@edgemeter/shared";

const DAY_MS = 86_400_000;
/**
 * Certificates start an hour in the past: a gateway whose clock runs a little behind (a
 * Raspberry Pi has no RTC) must not reject a certificate issued "in its future".
 */
const BACKDATE_MS = 3_600_000;
export const MAX_VALIDITY_DAYS = 36_500;

export interface ValidityWindow {
  notBefore: Date;
  notAfter: Date;
}

/** @throws EdgemeterError `pki.invalid` unless `days` is a whole number from 1 to 36500. */
export function checkValidityDays(days: number, what: string): number {
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new EdgemeterError(
      "pki.invalid",
      `${what}: validity must be a whole number of days from 1 to ${MAX_VALIDITY_DAYS}, got ${days}`,
    );
  }
  return days;
}

export function validityWindow(nowMs: number, days: number): ValidityWindow {
  return { notBefore: new Date(nowMs - BACKDATE_MS), notAfter: new Date(nowMs + days * DAY_MS) };
}
