/**
 * Test PKIs built with the real provisioning library, so every cross-package test
 * exercises the same certificates an installation would use.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { type CaCertificate, type IssuedCertificate, initCa, issueCertificate } from "@edgemeter/provisioning";

/** Test certificates live two days: long enough for any run, short enough never to pass for real ones. */
const TEST_VALIDITY_DAYS = 2;

/** One party's TLS files, in the shape the gateway and cloud configs take them (and nothing more). */
export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface TestPkiOptions {
  /** Gateway ids; each gets `gateways/<id>/{key,cert,ca}.pem`. */
  gateways: readonly string[];
  /** Server names (SAN DNS localhost + the name, IP 127.0.0.1 and ::1); default ["broker"]. */
  servers?: readonly string[];
  /** Service names with clientAuth certificates, e.g. "cloud-ingest"; default none. */
  clients?: readonly string[];
}

export interface TestPki {
  dir: string;
  ca: CaCertificate;
  /** The CA certificate: the trust anchor every party is configured with. */
  caFile: string;
  gateways: Record<string, IssuedCertificate>;
  servers: Record<string, IssuedCertificate>;
  clients: Record<string, IssuedCertificate>;
  /** @throws when `id` was not in `gateways`. */
  gateway(id: string): TlsFiles;
  /** Default: the first of `servers`. @throws when `name` was not issued. */
  server(name?: string): TlsFiles;
  /** @throws when `name` was not in `clients`. */
  client(name: string): TlsFiles;
}

export function tlsFilesOf(issued: IssuedCertificate): TlsFiles {
  return { caFile: issued.caPath, certFile: issued.certPath, keyFile: issued.keyPath };
}

async function issueAll(
  dir: string,
  kind: IssuedCertificate["kind"],
  names: readonly string[],
): Promise<Record<string, IssuedCertificate>> {
  const issued: Record<string, IssuedCertificate> = {};
  for (const name of names) {
    issued[name] = await issueCertificate(dir, { kind, name, validityDays: TEST_VALIDITY_DAYS });
  }
  return issued;
}

function lookup(issued: Record<string, IssuedCertificate>, kind: string, name: string | undefined): TlsFiles {
  const found = name === undefined ? undefined : issued[name];
  if (found === undefined) {
    throw new Error(
      `test PKI has no ${kind} certificate ${JSON.stringify(name)}; issued: ${Object.keys(issued).join(", ")}`,
    );
  }
  return tlsFilesOf(found);
}

/** A CA in `dir` and the requested certificates, all issued by it. */
export async function makeTestPki(dir: string, options: TestPkiOptions): Promise<TestPki> {
  const ca = await initCa(dir, { commonName: "edgemeter test CA", validityDays: TEST_VALIDITY_DAYS + 1 });
  const serverNames = options.servers ?? ["broker"];
  const gateways = await issueAll(dir, "gateway", options.gateways);
  const servers = await issueAll(dir, "server", serverNames);
  const clients = await issueAll(dir, "client", options.clients ?? []);
  return {
    dir,
    ca,
    caFile: ca.certPath,
    gateways,
    servers,
    clients,
    gateway: (id) => lookup(gateways, "gateway", id),
    server: (name) => lookup(servers, "server", name ?? serverNames[0]),
    client: (name) => lookup(clients, "client", name),
  };
}

/**
 * A second CA, unrelated to any test PKI, created in `<dir>/foreign`, and the TLS files of
 * a gateway certificate it issued for `gatewayId` (default "gw-impostor"; pass a real
 * gateway's id to impersonate it). `caFile` is the foreign CA.
 */
export async function makeForeignCa(dir: string, gatewayId = "gw-impostor"): Promise<TlsFiles> {
  const foreignDir = path.join(dir, "foreign");
  await initCa(foreignDir, { commonName: "foreign CA", validityDays: TEST_VALIDITY_DAYS + 1 });
  const gateway = await issueCertificate(foreignDir, {
    kind: "gateway",
    name: gatewayId,
    validityDays: TEST_VALIDITY_DAYS,
  });
  return tlsFilesOf(gateway);
}

/** The `{ ca, cert, key }` contents of TLS files, as mqtt.js and node:tls take them. */
export function readTlsCredentials(files: TlsFiles): { ca: Buffer; cert: Buffer; key: Buffer } {
  return { ca: readFileSync(files.caFile), cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
}
