/**
 * The technicians' status page (issue 6) in a real Chromium (Debian's, driven by
 * playwright-core), against a real gateway: its Modbus scheduler polls three simulated
 * SDM630 meters over TCP, stores readings in its SQLite outbox, and its uplink (mTLS, with a
 * certificate from the test CA) retries a broker that is not there, so readings buffer.
 *
 * The fault comes from the simulator (a scripted voltage swell) through the gateway's fault
 * detector, as in the field. The outbox starts with the backlog of an earlier outage that the
 * disk cap thinned (issue 4): its counts survive the restart and show on the overview, in
 * /api/status and in /metrics.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import {
  createGateway,
  createLogger,
  type Gateway,
  loadConfig,
  type NewReading,
  OUTBOX_FILE_NAME,
  SqliteOutbox,
  type StatusSnapshot,
} from "@edgemeter/gateway";
import { startSimulator } from "@edgemeter/hardware";
import { freePort, requireService, tempDir } from "@edgemeter/shared/testing";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTestPki } from "../support/pki.js";
import { BIN, REPO_ROOT } from "../support/processes.js";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = requireService("chromium", existsSync(CHROMIUM), "apt-get install chromium");
const OUTPUT_DIR = path.join(REPO_ROOT, "test-output");
const PASSWORD = "cabinet-7 correct horse";
const GATEWAY_ID = "gw-status";
const require = createRequire(import.meta.url);

describe.skipIf(!hasChromium)("status page", () => {
  const tmp = tempDir("status-page");
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  let gateway: Gateway;
  let browser: Browser;
  let baseUrl: string;
  let context: BrowserContext;
  let page: Page;
  /** What the disk cap thinned before this gateway started (persisted in the outbox). */
  let seededThinned: number;

  beforeAll(async () => {
    mkdirSync(OUTPUT_DIR, { recursive: true });
    sim = await startSimulator({
      port: 0,
      tickMs: 250,
      meters: [1, 2, 3].map((unitId) => ({ unitId, profile: "sdm630" })),
    });
    const pki = await makeTestPki(path.join(tmp.dir, "pki"), { gateways: [GATEWAY_ID] });
    // The hash comes from the gateway's own CLI, the password on stdin (as an installer would).
    const hashFile = path.join(tmp.dir, "status-password.scrypt");
    const hashed = spawnSync(process.execPath, [BIN.gateway, "hash-password", "--out", hashFile], {
      input: `${PASSWORD}\n`,
      encoding: "utf8",
    });
    expect(hashed.status, hashed.stderr).toBe(0);
    expect(statSync(hashFile).mode & 0o077, "hash file is private").toBe(0);
    expect(readFileSync(hashFile, "utf8")).toMatch(/^scrypt\$\d+\$\d+\$\d+\$[\w-]+\$[\w-]+\n$/);

    // An earlier outage under a tighter cap: six hours of two meters every 10 s, thinned.
    const dataDir = path.join(tmp.dir, "data");
    const earlier = new SqliteOutbox({ file: path.join(dataDir, OUTBOX_FILE_NAME), capBytes: 400 * 1_024 });
    const outage: NewReading[] = [];
    for (let s = 0; s < 6 * 3_600; s += 10) {
      for (const meterId of ["old-meter-a", "old-meter-b"]) {
        outage.push({
          meterId,
          ts: new Date(Date.UTC(2026, 0, 1) + s * 1_000).toISOString(),
          clock: "synced",
          values: { voltageL1V: 230, activePowerW: 1_150, importEnergyKwh: 1_000 + s / 3_600 },
        });
      }
    }
    for (let i = 0; i < outage.length; i += 20) earlier.append(outage.slice(i, i + 20));
    seededThinned = earlier.stats().thinnedReadings;
    expect(seededThinned).toBeGreaterThan(1_000);
    expect(earlier.stats().droppedReadings).toBe(0);
    earlier.close();

    const configFile = path.join(tmp.dir, "gateway.yaml");
    writeFileSync(
      configFile,
      JSON.stringify({
        gatewayId: GATEWAY_ID,
        dataDir,
        // Room above the seeded backlog for the whole test: the counts stay those of the outage.
        outbox: { capMb: 1 },
        // Nobody listens there: the uplink keeps retrying and the outbox fills.
        uplink: { kind: "mqtt", url: `mqtts://localhost:${await freePort()}`, ...pki.gateway(GATEWAY_ID) },
        buses: [
          {
            id: "sim",
            transport: "tcp",
            host: "127.0.0.1",
            port: sim.port,
            timeoutMs: 300,
            // Unit 9 is configured but not simulated: a meter that never answers.
            meters: [1, 2, 3, 9].map((unitId) => ({
              id: `meter-${unitId}`,
              unitId,
              profile: "sdm630",
              pollIntervalMs: 500,
            })),
          },
        ],
        status: { host: "127.0.0.1", port: 0, passwordHashFile: hashFile },
        log: { level: "warn" },
      }),
    );
    const config = loadConfig(configFile);
    gateway = createGateway(config, { logger: createLogger("warn") });
    await gateway.start();
    const url = gateway.statusUrl();
    if (url === undefined) throw new Error("the status page did not start");
    baseUrl = url;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
    await sim?.close();
    tmp.remove();
  });

  async function logIn(target: Page, password: string) {
    await target.goto(`${baseUrl}/`);
    expect(new URL(target.url()).pathname).toBe("/login");
    await target.fill("#password", password);
    const [response] = await Promise.all([
      target.waitForResponse((r) => r.url().endsWith("/login") && r.request().method() === "POST"),
      target.click("button[type=submit]"),
    ]);
    return response;
  }

  it("refuses a wrong password, then logs in and shows the overview", async () => {
    const refused = await logIn(page, "not the password");
    expect(refused.status()).toBe(401);
    await expect(page.getByRole("alert").textContent()).resolves.toContain("Wrong password");

    await logIn(page, PASSWORD);
    await page.waitForURL(`${baseUrl}/`);
    const cookie = (await context.cookies()).find((c) => c.name === "edgemeter_status");
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe("Strict");

    await page.waitForSelector("[data-field=uplink] .badge");
    await expect(page.locator("#gateway-id").textContent()).resolves.toContain(GATEWAY_ID);
    // No broker: a word, not just a colour.
    await expect(page.locator("[data-field=uplink] .badge").textContent()).resolves.toContain("Retrying");
    // Readings buffer while the uplink is away.
    await page.waitForFunction(
      () => Number(document.querySelector("[data-value=buffered]")?.textContent ?? "0") > 0,
      undefined,
      { timeout: 15_000 },
    );
    // The test CA issues for TEST_VALIDITY_DAYS: the card shows the whole days left.
    await expect(page.locator("[data-field=certificate] .big").textContent()).resolves.toMatch(/\d+ days?$/);
    await expect(page.locator("[data-field=clock] .badge").textContent()).resolves.toContain("Synchronised");
    await expect(page.locator("[data-field=disk] .big").textContent()).resolves.toMatch(/% used/);
    // Disk cap (issue 4): always shown, with the thinned and dropped counts, digits grouped.
    const diskCap = page.locator("[data-field=diskcap]");
    await expect(diskCap.locator("h2").textContent()).resolves.toBe("Disk cap");
    const capText = (await diskCap.locator(".big").textContent()) ?? "";
    expect(capText).toMatch(/^\S+ Thinned [\d\u202f]+ thinned, 0 dropped$/);
    const thinnedShown = Number((await diskCap.locator("[data-value=thinned]").textContent())?.replace(/\D/g, ""));
    expect(thinnedShown).toBe(seededThinned);
    await expect(diskCap.locator("[data-value=dropped]").textContent()).resolves.toBe("0");
    await page.screenshot({ path: path.join(OUTPUT_DIR, "status-overview.png"), fullPage: true });
  });

  it("has no serious accessibility violations on the overview (axe-core)", async () => {
    // The page's CSP (script-src 'self') rightly refuses the injected axe script: this one
    // context bypasses it.
    const audit = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
    try {
      const auditPage = await audit.newPage();
      await logIn(auditPage, PASSWORD);
      await auditPage.waitForURL(`${baseUrl}/`);
      await auditPage.waitForSelector("[data-field=uplink] .badge");
      await auditPage.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
      const { violations, passes } = await auditPage.evaluate(async () => {
        const result = await window.axe.run();
        return {
          violations: result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })),
          passes: result.passes.length,
        };
      });
      // axe really looked at the rendered page (colour contrast, names, landmarks, …).
      expect(passes).toBeGreaterThan(10);
      const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
      expect(serious).toEqual([]);
    } finally {
      await audit.close();
    }
  });

  it("lists the three meters with values that change live, without a reload, and the silent one offline", async () => {
    await page.goto(`${baseUrl}/meters`);
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll("tr[data-meter] [data-value=voltage]")].filter((td) =>
          /\d+\.\d/.test(td.textContent ?? ""),
        ).length === 3,
      undefined,
      { timeout: 15_000 },
    );
    const ids = await page
      .locator("tr[data-meter]")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-meter")));
    expect(ids).toEqual(["meter-1", "meter-2", "meter-3", "meter-9"]);
    await page.waitForFunction(
      () => document.querySelector("tr[data-meter=meter-9] .badge")?.textContent?.includes("Offline") === true,
      undefined,
      { timeout: 20_000 },
    );
    const states = await page.locator("tr[data-meter] .badge").allTextContents();
    // A word and an icon, not a colour alone.
    expect(states.map((s) => s.trim())).toEqual(["✔ OK", "✔ OK", "✔ OK", "✖ Offline"]);
    await expect(page.locator("tr[data-meter=meter-9] [data-value=voltage]").textContent()).resolves.toBe("— / — / —");

    // A marker on window survives only if the page is not reloaded.
    await page.evaluate(() => {
      window.marker = "same page";
    });
    const cell = "tr[data-meter=meter-1] [data-value=voltage]";
    const before = await page.locator(cell).textContent();
    await page.waitForFunction(
      ({ selector, text }) => document.querySelector(selector)?.textContent !== text,
      { selector: cell, text: before },
      { timeout: 15_000 },
    );
    expect(await page.evaluate(() => window.marker)).toBe("same page");

    // Live updates do not steal a keyboard user's focus.
    await page.focus("a[href='/meters/meter-2']");
    const updates = Number(await page.locator("#live").getAttribute("data-updates"));
    await page.waitForFunction(
      (seen) => Number(document.querySelector("#live")?.getAttribute("data-updates")) > seen,
      updates,
      { timeout: 10_000 },
    );
    expect(await page.evaluate(() => document.activeElement?.getAttribute("href"))).toBe("/meters/meter-2");
    await page.screenshot({ path: path.join(OUTPUT_DIR, "status-meters.png"), fullPage: true });
  });

  it("opens a meter's charts of voltage per phase, frequency and power", async () => {
    await page.goto(`${baseUrl}/meters`);
    await page.click("a[href='/meters/meter-2']");
    await page.waitForURL(`${baseUrl}/meters/meter-2`);
    for (const chart of ["voltage", "frequency", "power"]) {
      await page.waitForSelector(`.chart[data-chart=${chart}] canvas`);
    }
    // The chart holds the history and keeps growing from the live stream.
    await page.waitForFunction(
      () => Number(document.querySelector(".chart[data-chart=voltage]")?.getAttribute("data-points")) >= 3,
      undefined,
      {
        timeout: 15_000,
      },
    );
    const legend = await page.locator(".chart[data-chart=voltage] .u-legend").textContent();
    expect(legend).toContain("L1");
    expect(legend).toContain("L3");
    await page.screenshot({ path: path.join(OUTPUT_DIR, "status-meter-chart.png"), fullPage: true });
  });

  it("shows a fault injected through the simulator as it starts and ends", async () => {
    await page.goto(`${baseUrl}/events`);
    await page.waitForSelector("h1:text('Events')");
    // A swell to 115 % of 230 V on L2 of meter-3 for 5 s (EN 50160: above 110 % is a swell).
    sim.setScenarios(3, [{ kind: "swell", startMs: Date.now(), durationMs: 5_000, levelPct: 115, phases: ["L2"] }]);
    const row = page.locator("tr[data-event]", { hasText: "Voltage swell" });
    await row.waitFor({ timeout: 15_000 });
    const activeText = await row.textContent();
    expect(activeText).toContain("Active");
    expect(activeText).toContain("meter-3");
    expect(activeText).toContain("Voltage swell (L2)");
    await page.screenshot({ path: path.join(OUTPUT_DIR, "status-events.png"), fullPage: true });

    // It ends by itself when the simulated swell is over, without a reload.
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll("tr[data-event]")].some(
          (r) => r.textContent?.includes("Voltage swell") === true && r.textContent.includes("Ended"),
        ),
      undefined,
      { timeout: 20_000 },
    );
    const ended = await row.textContent();
    const extreme = Number(/([\d.]+) V \(limit/.exec(ended ?? "")?.[1]);
    expect(extreme).toBeGreaterThan(253);
  });

  it("fits a phone screen", async () => {
    const phone = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    try {
      const phonePage = await phone.newPage();
      await logIn(phonePage, PASSWORD);
      await phonePage.waitForURL(`${baseUrl}/`);
      await phonePage.waitForSelector("[data-field=uplink] .badge");
      await phonePage.screenshot({ path: path.join(OUTPUT_DIR, "status-overview-phone.png"), fullPage: true });
      await phonePage.goto(`${baseUrl}/meters`);
      await phonePage.waitForSelector("tr[data-meter=meter-3] .badge");
      const overflow = await phonePage.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(0);
      await phonePage.screenshot({ path: path.join(OUTPUT_DIR, "status-meters-phone.png"), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  async function loginCookie(): Promise<string> {
    const response = await fetch(`${baseUrl}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ password: PASSWORD }),
      redirect: "manual",
    });
    expect(response.status).toBe(303);
    const setCookie = response.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    return setCookie.split(";")[0] as string;
  }

  it("serves /api/status and /metrics only with a session (or Basic auth)", async () => {
    for (const route of ["/api/status", "/metrics", "/api/meters/meter-1/history", "/api/stream"]) {
      const response = await fetch(`${baseUrl}${route}`);
      expect(response.status, route).toBe(401);
    }
    const pageResponse = await fetch(`${baseUrl}/meters`, { redirect: "manual" });
    expect(pageResponse.status).toBe(303);
    expect(pageResponse.headers.get("location")).toBe("/login");

    const cookie = await loginCookie();
    const status = await fetch(`${baseUrl}/api/status`, { headers: { cookie } });
    expect(status.status).toBe(200);
    const snapshot = (await status.json()) as StatusSnapshot;
    expect(snapshot.gatewayId).toBe(GATEWAY_ID);
    expect(snapshot.meters.map((m) => [m.id, m.state])).toEqual([
      ["meter-1", "ok"],
      ["meter-2", "ok"],
      ["meter-3", "ok"],
      ["meter-9", "offline"],
    ]);
    expect(snapshot.meters.slice(0, 3).every((m) => typeof m.values.voltageL1V === "number")).toBe(true);
    expect(snapshot.uplink.state).toBe("retrying");
    expect(snapshot.uplink.reason).toMatch(/broker unreachable/);
    expect(snapshot.outbox.bufferedReadings).toBeGreaterThan(0);
    expect(snapshot.outbox).toMatchObject({ thinnedReadings: seededThinned, droppedReadings: 0, capBytes: 1_048_576 });
    const swell = snapshot.events.find((e) => e.kind === "voltageSwell");
    expect(swell).toMatchObject({ meterId: "meter-3", phase: "L2", active: false });
    expect(swell?.extremeValue).toBeGreaterThan(253);

    const metrics = await fetch(`${baseUrl}/metrics`, { headers: { cookie } });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toContain("text/plain");
    const text = await metrics.text();
    expect(text).toContain(`edgemeter_gateway_info{gateway_id="${GATEWAY_ID}"`);
    expect(text).toMatch(/^edgemeter_outbox_buffered_readings [1-9]\d*$/m);
    expect(text).toContain('edgemeter_uplink_state{state="retrying"} 1');
    expect(text).toMatch(/^edgemeter_meter_value\{meter="meter-2",measurement="voltageL1V"\} \d+/m);
    expect(text).toMatch(/^edgemeter_certificate_expiry_days\{file="[^"]+"\} \d+$/m);
    expect(text).toContain('edgemeter_meter_state{meter="meter-9",state="offline"} 1');
    expect(text).toMatch(new RegExp(`^edgemeter_outbox_thinned_readings ${seededThinned}$`, "m"));
    expect(text).toMatch(/^edgemeter_outbox_dropped_readings 0$/m);

    // A Prometheus scraper has no cookie jar: HTTP Basic with the same password.
    const basic = Buffer.from(`prometheus:${PASSWORD}`).toString("base64");
    const scraped = await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Basic ${basic}` } });
    expect(scraped.status).toBe(200);

    const loggedOut = await fetch(`${baseUrl}/logout`, { method: "POST", headers: { cookie }, redirect: "manual" });
    expect(loggedOut.status).toBe(303);
    expect((await fetch(`${baseUrl}/api/status`, { headers: { cookie } })).status).toBe(401);
  });

  // Last: it leaves this client address throttled.
  it("slows logins down after repeated wrong passwords", async () => {
    const attempt = (password: string) =>
      fetch(`${baseUrl}/login`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ password }),
        redirect: "manual",
      });
    const statuses: number[] = [];
    let throttled: Response | undefined;
    for (let i = 0; i < 10 && throttled === undefined; i++) {
      const response = await attempt(`guess-${i}`);
      statuses.push(response.status);
      if (response.status === 429) throttled = response;
    }
    // The first wrong passwords are merely refused; then the gateway makes the client wait.
    expect(statuses.slice(0, 4)).toEqual([401, 401, 401, 401]);
    expect(throttled?.status).toBe(429);
    expect(Number(throttled?.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // While throttled even the right password is not checked.
    expect((await attempt(PASSWORD)).status).toBe(429);
  });
});

// Browser globals used inside page.evaluate/waitForFunction callbacks, which run in
// Chromium: the test project compiles without the DOM lib, so just what is used is declared.
interface BrowserElement {
  textContent: string | null;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): BrowserElement | null;
  querySelectorAll(selector: string): Iterable<BrowserElement>;
  documentElement: { scrollWidth: number };
  activeElement: BrowserElement | null;
};
declare const window: {
  innerWidth: number;
  marker?: string;
  axe: { run(): Promise<{ violations: AxeViolation[]; passes: unknown[] }> };
};

interface AxeViolation {
  id: string;
  impact: string | null;
  nodes: unknown[];
}
