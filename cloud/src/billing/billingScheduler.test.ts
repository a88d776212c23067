import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { SqlClient } from "../store/sqlClient.js";
import { BillingScheduler } from "./billingScheduler.js";

// nextFire is pure (no database): the SQL client is never touched by these tests.
const scheduler = (zone: string, dayOfMonth?: number, hour?: number) =>
  new BillingScheduler({
    sql: {} as SqlClient,
    logger: pino({ level: "silent" }),
    zone,
    ...(dayOfMonth === undefined ? {} : { dayOfMonth }),
    ...(hour === undefined ? {} : { hour }),
  });

describe("billing schedule (cron in the utility's zone)", () => {
  it("fires on the 1st at 08:00 local time, DST-correct, billing the month before", () => {
    const berlin = scheduler("Europe/Berlin");
    expect(berlin.pattern).toBe("0 8 1 * *");
    // Summer time (UTC+2) on 1 April, winter time (UTC+1) on 1 November.
    expect(berlin.nextFire(Date.parse("2026-03-15T00:00:00Z"))).toEqual({
      atMs: Date.parse("2026-04-01T06:00:00Z"),
      period: "2026-03",
    });
    expect(berlin.nextFire(Date.parse("2026-10-15T00:00:00Z"))).toEqual({
      atMs: Date.parse("2026-11-01T07:00:00Z"),
      period: "2026-10",
    });
    // December is billed in January of the next year.
    expect(berlin.nextFire(Date.parse("2026-12-20T00:00:00Z")).period).toBe("2026-12");
    // Strictly after: at the fire instant itself, the next one is a month later.
    expect(berlin.nextFire(Date.parse("2026-11-01T07:00:00Z")).atMs).toBe(Date.parse("2026-12-01T07:00:00Z"));
  });

  it("follows a configured day and hour in a North American zone", () => {
    const newYork = scheduler("America/New_York", 2, 6);
    expect(newYork.nextFire(Date.parse("2026-11-01T00:00:00Z"))).toEqual({
      atMs: Date.parse("2026-11-02T11:00:00Z"),
      period: "2026-10",
    });
  });
});
