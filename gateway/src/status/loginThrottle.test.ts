import { describe, expect, it } from "vitest";
import { FREE_FAILURES, LoginThrottle } from "./loginThrottle.js";

describe("LoginThrottle", () => {
  it("lets the first failures through, then doubles the wait per failure", () => {
    const throttle = new LoginThrottle();
    let now = 1_000_000;
    for (let i = 0; i < FREE_FAILURES; i++) {
      expect(throttle.check("10.0.0.5", now)).toEqual({ allowed: true });
      expect(throttle.failed("10.0.0.5", now)).toBe(0);
    }
    expect(throttle.failed("10.0.0.5", now)).toBe(1_000);
    expect(throttle.check("10.0.0.5", now + 400)).toEqual({ allowed: false, retryAfterMs: 600 });
    now += 1_000;
    expect(throttle.check("10.0.0.5", now)).toEqual({ allowed: true });
    expect(throttle.failed("10.0.0.5", now)).toBe(2_000);
    now += 2_000;
    expect(throttle.failed("10.0.0.5", now)).toBe(4_000);
    // Another address is not held up by this one.
    expect(throttle.check("10.0.0.9", now)).toEqual({ allowed: true });
  });

  it("caps the wait at five minutes", () => {
    const throttle = new LoginThrottle();
    let delay = 0;
    for (let i = 0; i < 30; i++) delay = throttle.failed("a", i * 1_000_000);
    expect(delay).toBe(300_000);
  });

  it("forgets an address after a successful login", () => {
    const throttle = new LoginThrottle();
    for (let i = 0; i < FREE_FAILURES + 2; i++) throttle.failed("a", 0);
    expect(throttle.check("a", 1).allowed).toBe(false);
    throttle.succeeded("a");
    expect(throttle.check("a", 1)).toEqual({ allowed: true });
    expect(throttle.failed("a", 1)).toBe(0);
  });

  it("bounds guessing from many addresses together", () => {
    const throttle = new LoginThrottle();
    for (let i = 0; i < 100; i++) throttle.failed(`10.0.${Math.floor(i / 250)}.${i % 250}`, i);
    const decision = throttle.check("192.168.1.1", 100);
    expect(decision.allowed).toBe(false);
  });
});
