import { describe, expect, it } from "vitest";
import { fullJitterBackoffMs } from "./backoff.js";

describe("fullJitterBackoffMs", () => {
  it("doubles the ceiling per attempt up to the cap, scaled by the random draw", () => {
    const almostOne = () => 0.999_999;
    expect([1, 2, 3, 4, 5, 10].map((attempt) => fullJitterBackoffMs(attempt, 500, 5_000, almostOne))).toEqual([
      499, 999, 1_999, 3_999, 4_999, 4_999,
    ]);
    expect(fullJitterBackoffMs(3, 500, 5_000, () => 0.5)).toBe(1_000);
    expect(fullJitterBackoffMs(7, 500, 5_000, () => 0)).toBe(0);
  });
});
