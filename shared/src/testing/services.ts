/**
 * Helpers for tests that need a real part of the machine (PostgreSQL, Mosquitto, socat,
 * Chromium…). On a developer machine that lacks one, the tests that need it are skipped
 * with a printed reason; under `CI=true` a missing part fails the run instead, so CI can
 * never go green by skipping. Test-only: nothing in a product path imports this.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/** Resolves true when something accepts a TCP connection at host:port within timeoutMs. */
export function probeTcp(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The absolute path of an executable on PATH (or one of the given absolute candidates), or null. */
export function findBinary(name: string, candidates: readonly string[] = []): string | null {
  for (const candidate of candidates) {
    if (spawnSync("test", ["-x", candidate]).status === 0) return candidate;
  }
  const found = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
  const location = found.stdout.trim();
  return found.status === 0 && location !== "" ? location : null;
}

/**
 * Decides whether tests needing `service` run. Returns true when `available`; otherwise
 * prints why they are skipped, or throws under CI=true.
 */
export function requireService(service: string, available: boolean, howToGetIt: string): boolean {
  if (available) return true;
  const message = `${service} is not available (${howToGetIt})`;
  if (process.env.CI === "true") throw new Error(`CI=true and ${message}: failing instead of skipping`);
  console.warn(`SKIPPING tests that need ${message}`);
  return false;
}

export const POSTGRES_URL = process.env.EDGEMETER_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A free TCP port on 127.0.0.1 (asks the kernel for one, then releases it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

/** A fresh temporary directory and a function that removes it. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `edgemeter-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Polls `check` every intervalMs until it returns a non-undefined value or timeoutMs passes. */
export async function waitFor<T>(
  check: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
}
