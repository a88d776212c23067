/**
 * The uplink's reconnect behaviour against a real Mosquitto with mutual TLS (issue 4, req. 3):
 * a broker restart, a broker that is away, a rejected certificate and an expired certificate
 * each end in a clear status (UplinkStatus.problem) and a paced retry, never a crash loop.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { MqttUplink, type MqttUplinkOptions, silentLogger } from "@edgemeter/gateway";
import { findBinary, freePort, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mosquittoAvailable, type RunningMosquitto, startMosquitto } from "../support/mosquitto.js";
import { makeForeignCa, makeTestPki, type TestPki, type TlsFiles } from "../support/pki.js";

const available = requireService("mosquitto", mosquittoAvailable(), "apt-get install mosquitto");
const haveOpenssl = requireService(
  "openssl",
  findBinary("openssl", ["/usr/bin/openssl"]) !== null,
  "apt install openssl",
);

const CAP_MS = 30_000;

function uplink(gatewayId: string, url: string, tls: TlsFiles, extra: Partial<MqttUplinkOptions> = {}): MqttUplink {
  return new MqttUplink({
    gatewayId,
    url,
    protocolVersion: 5,
    clientId: gatewayId,
    keepaliveS: 30,
    reconnectPeriodMs: 200,
    reconnectCapMs: CAP_MS,
    stablePeriodMs: 60_000,
    connectTimeoutMs: 3_000,
    tls: { caFile: tls.caFile, certFile: tls.certFile, keyFile: tls.keyFile },
    version: "test",
    statusFacts: () => ({ bufferedReadings: 0, oldestUnsentTs: null }),
    logger: silentLogger(),
    ...extra,
  });
}

/**
 * A gateway certificate signed by the test CA that expired in 2020: `openssl ca` is the one
 * OpenSSL 3.0 tool that takes explicit start and end dates.
 */
function expiredGatewayCertificate(pki: TestPki, dir: string, gatewayId: string): TlsFiles {
  const keyFile = path.join(dir, "expired.key.pem");
  const csrFile = path.join(dir, "expired.csr.pem");
  const certFile = path.join(dir, "expired.cert.pem");
  const configFile = path.join(dir, "ca.cnf");
  writeFileSync(path.join(dir, "index.txt"), "");
  writeFileSync(path.join(dir, "serial"), "1000\n");
  writeFileSync(
    configFile,
    [
      "[ca]",
      "default_ca = test",
      "[test]",
      `database = ${path.join(dir, "index.txt")}`,
      `serial = ${path.join(dir, "serial")}`,
      `new_certs_dir = ${dir}`,
      "default_md = sha256",
      "policy = any",
      "x509_extensions = client",
      "[any]",
      "commonName = supplied",
      "[client]",
      "basicConstraints = CA:FALSE",
      "keyUsage = digitalSignature",
      "extendedKeyUsage = clientAuth",
      "",
    ].join("\n"),
  );
  execFileSync("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", keyFile]);
  execFileSync("openssl", ["req", "-new", "-key", keyFile, "-subj", `/CN=${gatewayId}`, "-out", csrFile]);
  execFileSync(
    "openssl",
    [
      "ca",
      "-batch",
      "-config",
      configFile,
      "-cert",
      pki.ca.certPath,
      "-keyfile",
      pki.ca.keyPath,
      "-startdate",
      "20200101000000Z",
      "-enddate",
      "20200102000000Z",
      "-in",
      csrFile,
      "-out",
      certFile,
    ],
    { stdio: "ignore" },
  );
  return { caFile: pki.caFile, certFile, keyFile };
}

describe.skipIf(!available)("MqttUplink reconnects against Mosquitto with mutual TLS", () => {
  const temp = tempDir("uplink-reconnect");
  let pki: TestPki;
  let broker: RunningMosquitto;
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    pki = await makeTestPki(temp.dir, { gateways: ["gw-r1", "gw-r2"] });
    broker = await startMosquitto({ dir: temp.dir, pki, tls: true });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await broker?.stop();
    temp.remove();
  });

  it("reports a broker restart as connectionLost, then brokerUnreachable, and reconnects by itself", async () => {
    const link = uplink("gw-r1", broker.url, pki.gateway("gw-r1"));
    cleanups.push(() => link.close(200));
    const states: string[] = [];
    link.on("state", (s) => states.push(s));
    await link.connect();
    await waitFor(() => (link.state === "connected" ? true : undefined), "connected");
    expect(link.status()).toMatchObject({ state: "connected", problem: null, attempt: 0 });
    expect(Date.parse(link.status().certificateExpiresAt ?? "")).toBeGreaterThan(Date.now());

    await broker.stop();
    await waitFor(() => (link.state === "disconnected" ? true : undefined), "disconnected");
    expect(link.status().problem).toBe("connectionLost");
    // While it is away, the next attempts are refused: backoff counts up, each attempt scheduled.
    await waitFor(() => (link.status().problem === "brokerUnreachable" ? true : undefined), "refused attempt");
    const away = link.status();
    expect(away.attempt).toBeGreaterThanOrEqual(2);
    expect(away.nextAttemptAt).not.toBeNull();

    await broker.restart();
    await waitFor(() => (link.state === "connected" ? true : undefined), "reconnected after the restart", 20_000);
    expect(link.status().problem).toBeNull();
    // The backoff resets only after the stable period (60 s here), not on the CONNACK: a broker
    // that accepts and drops at once keeps the delays growing.
    expect(link.status().attempt).toBeGreaterThanOrEqual(away.attempt);
  });

  it("reports a certificate from a foreign CA as certificateRejected and waits the cap before retrying", async () => {
    const foreign = await makeForeignCa(temp.dir, "gw-r2");
    // Trust our CA for the broker, present the foreign certificate.
    const link = uplink("gw-r2", broker.url, { ...foreign, caFile: pki.caFile });
    cleanups.push(() => link.close(200));
    await link.connect();
    await waitFor(() => (link.status().problem !== null ? true : undefined), "a classified failure");
    const status = link.status();
    expect(status).toMatchObject({ state: "disconnected", problem: "certificateRejected", attempt: 1 });
    // Certificate problems do not heal in seconds: the next attempt is a cap away, not 200 ms.
    expect(Date.parse(status.nextAttemptAt ?? "") - Date.now()).toBeGreaterThan(CAP_MS / 2);
  });

  it.runIf(haveOpenssl)("reports an expired client certificate as certificateExpired", async () => {
    const dir = path.join(temp.dir, "expired");
    execFileSync("mkdir", ["-p", dir]);
    const expired = expiredGatewayCertificate(pki, dir, "gw-r1");
    const link = uplink("gw-r1", broker.url, expired);
    cleanups.push(() => link.close(200));
    await link.connect();
    await waitFor(() => (link.status().problem !== null ? true : undefined), "a classified failure");
    expect(link.status()).toMatchObject({
      problem: "certificateExpired",
      certificateExpiresAt: "2020-01-02T00:00:00.000Z",
    });
    expect(link.status().detail).toContain("expired");
  });

  it("reports a closed port as brokerUnreachable", async () => {
    const port = await freePort();
    const link = uplink("gw-r1", `mqtts://127.0.0.1:${port}`, pki.gateway("gw-r1"));
    cleanups.push(() => link.close(200));
    await link.connect();
    await waitFor(() => (link.status().problem !== null ? true : undefined), "a classified failure");
    expect(link.status().problem).toBe("brokerUnreachable");
  });
});
