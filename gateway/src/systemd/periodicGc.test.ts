import { Writable } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("startPeriodicGc", () => {
  const stops: Array<() => void> = [];
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
  });

  it("collects every interval until stopped", async () => {
    let collections = 0;
    const { logger } = capturingLogger();
    const stop = startPeriodicGc({ intervalMs: 20, gc: () => collections++, logger });
    stops.push(stop);
    await sleep(150);
    expect(collections).toBeGreaterThanOrEqual(3);
    stop();
    const atStop = collections;
    await sleep(80);
    expect(collections).toBe(atStop);
  });

  it("does nothing without gc() (Node.js without --expose-gc) and says so at debug", async () => {
    const { logger, lines } = capturingLogger();
    stops.push(startPeriodicGc({ intervalMs: 10, gc: undefined, logger }));
    await sleep(30);
    expect(lines.map((l) => l.msg)).toEqual(["no periodic garbage collection: Node.js runs without --expose-gc"]);
  });
});
