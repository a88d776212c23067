import { writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "@edgemeter/shared/testing";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FakeClock } from "../time/fakeClock.js";
import { LiveGatewayState } from "./liveGatewayState.js";
import { hashPassword } from "./password.js";
import { StatusServer } from "./statusServer.js";

/** Counts the scrypt verifications the server runs (the real ones, passed through). */
const scrypt = vi.hoisted(() => ({ calls: 0 }));
vi.mock("./password.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("./password.js")>();
  return {
    ...original,
    verifyPassword: (...args: Parameters<typeof original.verifyPassword>) => {
      scrypt.calls++;
      return original.verifyPassword(...args);
    },
  };
});

describe("StatusServer", () => {
  const tmp = tempDir("status-server");
  const clock = new FakeClock();
  let server: StatusServer;
  let base: string;
  let cookie: string;

  beforeAll(async () => {
    const hashFile = path.join(tmp.dir, "status.scrypt");
    writeFileSync(hashFile, `${await hashPassword("pw", { N: 1024, r: 8, p: 1 })}\n`);
    const state = new LiveGatewayState({
      gatewayId: "gw-1",
      version: "1.0.0",
      clock,
      meters: [{ id: "m1", busId: "b", pollIntervalMs: 1000 }],
      outbox: { depth: () => 0, oldestTs: () => null },
      uplinkState: () => "connected",
      forwarderStats: () => ({ publishedBatches: 0, rejectedBatches: 0 }),
      busStats: () => [],
      dataDir: tmp.dir,
    });
    server = new StatusServer({
      host: "127.0.0.1",
      port: 0,
      passwordHashFile: hashFile,
      sessionTtlMs: 60_000,
      state,
      clock,
      logger: pino({ level: "silent" }),
    });
    await server.start();
    base = server.url() as string;
    const login = await fetch(`${base}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "password=pw",
      redirect: "manual",
    });
    cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
  });

  afterAll(async () => {
    await server.stop();
    tmp.remove();
  });

  it("serves only local assets, with a strict content security policy", async () => {
    for (const name of ["app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css", "icon.svg"]) {
      const response = await fetch(`${base}/assets/${name}`);
      expect(response.status, name).toBe(200);
      expect((await response.text()).length, name).toBeGreaterThan(50);
    }
    expect((await fetch(`${base}/assets/..%2Fpassword.ts`)).status).toBe(404);
    const page = await fetch(`${base}/login`);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("ends sessions: logged out, expired after the idle time", async () => {
    expect((await fetch(`${base}/api/status`, { headers: { cookie } })).status).toBe(200);
    await clock.advance(60_001);
    expect((await fetch(`${base}/api/status`, { headers: { cookie } })).status).toBe(401);
  });

  it("answers an unknown meter with 404 and a bad body with 4xx, and keeps running", async () => {
    const login = await fetch(`${base}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "password=pw",
      redirect: "manual",
    });
    const session = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
    expect((await fetch(`${base}/meters/nope`, { headers: { cookie: session } })).status).toBe(404);
    expect((await fetch(`${base}/api/meters/nope/history`, { headers: { cookie: session } })).status).toBe(404);
    const huge = await fetch(`${base}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `password=${"x".repeat(10_000)}`,
    });
    expect(huge.status).toBe(413);
    expect((await fetch(`${base}/api/status`, { headers: { cookie: session } })).status).toBe(200);
  });

  it("answers unknown routes and names that are not assets with 404, HEAD without a body", async () => {
    for (const route of ["/nope", "/assets/constructor", "/assets/__proto__", "/api/meters/m1"]) {
      expect((await fetch(`${base}${route}`, { headers: { cookie } })).status, route).toBe(404);
    }
    const head = await fetch(`${base}/login`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(await head.text()).toBe("");
    expect((await fetch(`${base}/meters/%E0%A4%A`, { headers: { cookie } })).status).toBe(400);
  });

  // Last: it leaves a wrong password in the login throttle.
  it("runs scrypt once for a scraper's repeated HTTP Basic password, and for every wrong one", async () => {
    const basic = (password: string) => ({
      authorization: `Basic ${Buffer.from(`prometheus:${password}`).toString("base64")}`,
    });
    const before = scrypt.calls;
    // "pw" was verified by the login in beforeAll: remembered since.
    for (let i = 0; i < 3; i++) expect((await fetch(`${base}/metrics`, { headers: basic("pw") })).status).toBe(200);
    expect(scrypt.calls - before).toBe(0);
    expect((await fetch(`${base}/metrics`, { headers: basic("pw2") })).status).toBe(401);
    expect(scrypt.calls - before).toBe(1);
  });

  it("refuses to start without a readable hash, naming the file", async () => {
    const broken = new StatusServer({
      host: "127.0.0.1",
      port: 0,
      passwordHashFile: path.join(tmp.dir, "missing.scrypt"),
      sessionTtlMs: 1,
      state: { snapshot: () => ({}) as never, meterHistory: () => undefined, onChange: () => () => {} },
      clock,
      logger: pino({ level: "silent" }),
    });
    await expect(broken.start()).rejects.toThrow(/status.passwordHashFile: cannot read .*missing\.scrypt/);
  });
});
