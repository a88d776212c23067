import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger } from "../logging/logger.js";
import { startPeriodicGc } from "./periodicGc.js";

function capturingLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger("debug", sink), lines };
}

describe("startPeriodicGc", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("collects every interval until stopped", () => {
    let collections = 0;
    const { logger } = capturingLogger();
    const stop = startPeriodicGc({ intervalMs: 20, gc: () => collections++, logger });
    vi.advanceTimersByTime(150);
    expect(collections).toBeGreaterThanOrEqual(3);
    expect(collections).toBe(7);
    stop();
    vi.advanceTimersByTime(100);
    expect(collections).toBe(7);
  });

  it("does nothing without gc() (Node.js without --expose-gc) and says so at debug", () => {
    const { logger, lines } = capturingLogger();
    const stop = startPeriodicGc({ intervalMs: 10, gc: undefined, logger });
    expect(vi.getTimerCount()).toBe(0);
    stop();
    expect(lines.map((l) => l.msg)).toEqual(["no periodic garbage collection: Node.js runs without --expose-gc"]);
  });
});
