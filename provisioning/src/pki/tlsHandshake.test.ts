/**
 * The certificates must work with Node's TLS (mqtt.js, the cloud's API and embedded
 * broker run on it): real mutual-TLS handshakes over loopback sockets.
 */
import { readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import path from "node:path";
import tls from "node:tls";
import { tempDir } from "@edgemeter/shared/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { initCa } from "./ca.js";
import { type IssuedCertificate, issueCertificate } from "./issue.js";

type HandshakeResult = { ok: true } | { ok: false; error: string };

/** A TLS server that demands a client certificate from our CA, as the broker and API do. */
interface MutualTlsServer {
  port: number;
  /** CN of each client certificate it accepted. */
  accepted: string[];
  /** Why it refused each handshake it refused. */
  refusals: string[];
  close(): Promise<void>;
}

async function startMutualTlsServer(serverCert: IssuedCertificate): Promise<MutualTlsServer> {
  const accepted: string[] = [];
  const refusals: string[] = [];
  const server = tls.createServer(
    {
      key: readFileSync(serverCert.keyPath),
      cert: readFileSync(serverCert.certPath),
      ca: readFileSync(serverCert.caPath),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    },
    (socket) => {
      accepted.push(String(socket.getPeerCertificate().subject.CN));
      socket.end("hello\n");
    },
  );
  server.on("tlsClientError", (error) => refusals.push(error.message));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    refusals,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Connects, waits for the server's greeting (sent only once it accepted us), and reports the outcome. */
function handshake(port: number, options: tls.ConnectionOptions): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...options });
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      received += chunk;
    });
    socket.once("error", (error) => resolve({ ok: false, error: error.message }));
    socket.once("end", () =>
      resolve(received === "hello\n" ? { ok: true } : { ok: false, error: "closed without greeting" }),
    );
  });
}

describe("certificates in a node:tls mutual-TLS handshake", () => {
  const temp = tempDir("tls");
  const pkiDir = path.join(temp.dir, "pki");
  let serverCert: IssuedCertificate;
  let gateway: IssuedCertificate;
  let service: IssuedCertificate;
  let foreignGateway: IssuedCertificate;
  let server: MutualTlsServer;

  beforeAll(async () => {
    await initCa(pkiDir);
    serverCert = await issueCertificate(pkiDir, { kind: "server", name: "broker" });
    gateway = await issueCertificate(pkiDir, { kind: "gateway", name: "gw-01" });
    service = await issueCertificate(pkiDir, { kind: "client", name: "cloud-ingest" });
    const foreignDir = path.join(temp.dir, "foreign");
    await initCa(foreignDir, { commonName: "foreign CA" });
    foreignGateway = await issueCertificate(foreignDir, { kind: "gateway", name: "gw-01" });
  });
  // A server per test, so each test sees only its own handshakes.
  beforeEach(async () => {
    server = await startMutualTlsServer(serverCert);
  });
  afterEach(async () => {
    await server.close();
  });
  afterAll(() => temp.remove());

  const credentials = (issued: IssuedCertificate) => ({
    ca: readFileSync(issued.caPath),
    cert: readFileSync(issued.certPath),
    key: readFileSync(issued.keyPath),
  });

  it("succeeds for a gateway certificate, verifying the server by its IP SAN", async () => {
    expect(await handshake(server.port, credentials(gateway))).toEqual({ ok: true });
    expect(server.accepted).toEqual(["gw-01"]);
  });

  it("succeeds for a cloud client certificate over TLS 1.2, verifying the server by its DNS SAN", async () => {
    const result = await handshake(server.port, {
      ...credentials(service),
      servername: "localhost",
      maxVersion: "TLSv1.2",
    });
    expect(result).toEqual({ ok: true });
    expect(server.accepted).toEqual(["cloud-ingest"]);
  });

  it("fails the client's check of a server name not in the certificate", async () => {
    const result = await handshake(server.port, { ...credentials(gateway), servername: "elsewhere.example" });
    expect(result.ok).toBe(false);
    expect(result.ok ? "" : result.error).toMatch(/elsewhere\.example/);
    expect(server.accepted).toEqual([]);
  });

  it("refuses a client certificate from another CA, even with a real gateway's CN", async () => {
    const result = await handshake(server.port, { ...credentials(foreignGateway), ca: readFileSync(gateway.caPath) });
    expect(result.ok).toBe(false);
    expect(server.accepted).toEqual([]);
    // Node's server drops an unverifiable TLS 1.3 client without a reason ("socket hang up"),
    // so the proof is that the server refused a handshake, not its wording.
    await expect.poll(() => server.refusals.length).toBe(1);
  });

  it("refuses a client without a certificate", async () => {
    const result = await handshake(server.port, { ca: readFileSync(gateway.caPath) });
    expect(result.ok).toBe(false);
    expect(server.accepted).toEqual([]);
    await expect.poll(() => server.refusals).toEqual([expect.stringMatching(/peer did not return a certificate/)]);
  });

  it("makes the client refuse a server whose certificate comes from another CA", async () => {
    const result = await handshake(server.port, { ...credentials(gateway), ca: readFileSync(foreignGateway.caPath) });
    expect(result.ok).toBe(false);
    expect(result.ok ? "" : result.error).toMatch(/self[- ]signed|unable to verify|unable to get local issuer/i);
    expect(server.accepted).toEqual([]);
  });
});
