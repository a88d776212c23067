/**
 * The edgemeter-provision binary as a user runs it: the compiled `dist/cli.js` in a child
 * process, checked by exit code, output and the files it leaves behind.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { requireService, tempDir } from "@edgemeter/shared/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCertificateInfo } from "./pki/info.js";
import { OPENSSL, openssl } from "./testing/openssl.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = path.join(REPO_ROOT, "provisioning", "dist", "cli.js");
const hasOpenssl = requireService("openssl", OPENSSL !== null, "apt-get install openssl");

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: readonly string[], cwd: string): RunResult {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8" });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A user error prints one clear line, never a stack trace. */
function expectNoStackTrace(result: RunResult): void {
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe.skipIf(!hasOpenssl)("edgemeter-provision CLI", () => {
  const temp = tempDir("cli");
  const pkiDir = path.join(temp.dir, "pki");

  beforeAll(() => {
    // The binary is the tsc output: build it so the test never runs stale code.
    const build = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-b", "provisioning"],
      {
        cwd: REPO_ROOT,
        encoding: "utf8",
      },
    );
    if (build.status !== 0) throw new Error(`tsc -b provisioning failed:\n${build.stdout}${build.stderr}`);
  }, 120_000);
  afterAll(() => temp.remove());

  it("ca init creates the CA in --dir with --cn and prints what it wrote", () => {
    const result = run(["ca", "init", "--dir", pkiDir, "--cn", "Test Utility CA", "--days", "400"], temp.dir);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const certPath = path.join(pkiDir, "ca.cert.pem");
    const keyPath = path.join(pkiDir, "ca.key.pem");
    expect(result.stdout).toContain(certPath);
    expect(result.stdout).toContain(keyPath);
    for (const file of [certPath, keyPath]) expect(statSync(file).mode & 0o777).toBe(0o600);
    const info = readCertificateInfo(readFileSync(certPath, "utf8"));
    expect(info).toMatchObject({ commonName: "Test Utility CA", isCa: true });
    expect(result.stdout).toContain(info.serialNumber);
  });

  it("ca init refuses to overwrite the CA (exit 2, one line, no stack) and replaces it with --force", () => {
    const certPath = path.join(pkiDir, "ca.cert.pem");
    const before = readFileSync(certPath, "utf8");
    const refused = run(["ca", "init", "--dir", pkiDir], temp.dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^edgemeter-provision: .*a CA already exists.*\n$/);
    expectNoStackTrace(refused);
    expect(readFileSync(certPath, "utf8")).toBe(before);

    const forced = run(["ca", "init", "--dir", pkiDir, "--cn", "Test Utility CA", "--force"], temp.dir);
    expect(forced.code).toBe(0);
    expect(readFileSync(certPath, "utf8")).not.toBe(before);
  });

  it("ca init defaults to ./.edgemeter/pki under the working directory", () => {
    const cwd = path.join(temp.dir, "project");
    const result = spawnSync("mkdir", ["-p", cwd]);
    expect(result.status).toBe(0);
    expect(run(["ca", "init"], cwd).code).toBe(0);
    expect(existsSync(path.join(cwd, ".edgemeter", "pki", "ca.key.pem"))).toBe(true);
  });

  it("cert issue --gateway writes a bundle that openssl verifies against the CA", () => {
    const result = run(["cert", "issue", "--gateway", "gw-7", "--dir", pkiDir, "--days", "30"], temp.dir);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const dir = path.join(pkiDir, "gateways", "gw-7");
    for (const file of ["key.pem", "cert.pem", "ca.pem"]) {
      expect(result.stdout).toContain(path.join(dir, file));
      expect(statSync(path.join(dir, file)).mode & 0o777).toBe(0o600);
    }
    const verified = openssl([
      "verify",
      "-purpose",
      "sslclient",
      "-CAfile",
      path.join(pkiDir, "ca.cert.pem"),
      path.join(dir, "cert.pem"),
    ]);
    expect(verified.status).toBe(0);
    const info = readCertificateInfo(readFileSync(path.join(dir, "cert.pem"), "utf8"));
    expect(info).toMatchObject({
      commonName: "gw-7",
      organizationalUnit: "gateway",
      extendedKeyUsages: ["clientAuth"],
    });
  });

  it("cert issue --server takes --dns and --ip lists", () => {
    const result = run(
      [
        "cert",
        "issue",
        "--server",
        "broker",
        "--dns",
        "mqtt.site.example, broker.local",
        "--ip",
        "10.0.0.5,::1",
        "--dir",
        pkiDir,
      ],
      temp.dir,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("broker, mqtt.site.example, broker.local, 10.0.0.5, ::1");
    const info = readCertificateInfo(readFileSync(path.join(pkiDir, "servers", "broker", "cert.pem"), "utf8"));
    expect(info.dnsNames).toEqual(["broker", "mqtt.site.example", "broker.local"]);
    expect(info.ipAddresses).toEqual(["10.0.0.5", "::1"]);
    expect(info.extendedKeyUsages).toEqual(["serverAuth"]);
  });

  it("cert issue --client issues a service certificate", () => {
    const result = run(["cert", "issue", "--client", "cloud-ingest", "--dir", pkiDir], temp.dir);
    expect(result.code).toBe(0);
    const info = readCertificateInfo(readFileSync(path.join(pkiDir, "clients", "cloud-ingest", "cert.pem"), "utf8"));
    expect(info).toMatchObject({ commonName: "cloud-ingest", organizationalUnit: "service" });
  });

  it("cert show prints a certificate's facts as JSON", () => {
    const result = run(["cert", "show", path.join(pkiDir, "gateways", "gw-7", "cert.pem")], temp.dir);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ commonName: "gw-7", issuer: "CN=Test Utility CA, OU=edgemeter" });
  });

  it.each([
    {
      why: "an invalid gateway id",
      args: ["cert", "issue", "--gateway", "gw/../x"],
      message: /gateway name "gw\/\.\.\/x": must be/,
    },
    { why: "no kind", args: ["cert", "issue"], message: /exactly one of --gateway ID, --server NAME, --client NAME/ },
    { why: "two kinds", args: ["cert", "issue", "--gateway", "a", "--client", "b"], message: /exactly one of/ },
    {
      why: "--dns on a gateway",
      args: ["cert", "issue", "--gateway", "gw-8", "--dns", "x"],
      message: /--dns and --ip apply to --server only/,
    },
    {
      why: "a bad IP",
      args: ["cert", "issue", "--server", "s1", "--ip", "1.2.3"],
      message: /"1\.2\.3" is not an IPv4 or IPv6 address/,
    },
    {
      why: "non-numeric --days",
      args: ["cert", "issue", "--gateway", "gw-8", "--days", "ten"],
      message: /--days <n>.*'ten' is invalid/,
    },
    {
      why: "zero --days",
      args: ["cert", "issue", "--gateway", "gw-8", "--days", "0"],
      message: /validity must be a whole number of days/,
    },
    {
      why: "an unknown option",
      args: ["cert", "issue", "--gateway", "gw-8", "--bogus"],
      message: /unknown option '--bogus'/,
    },
    {
      why: "an existing certificate",
      args: ["cert", "issue", "--gateway", "gw-7"],
      message: /already exists; use force/,
    },
  ])("exits 2 with a clear message for $why", ({ args, message }) => {
    const result = run([...args, "--dir", pkiDir], temp.dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe("");
    expectNoStackTrace(result);
  });

  it("exits 2 and names the command to run when the directory has no CA", () => {
    const result = run(["cert", "issue", "--gateway", "gw-1", "--dir", path.join(temp.dir, "nowhere")], temp.dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/no CA found.*edgemeter-provision ca init --dir/);
    expectNoStackTrace(result);
    expect(existsSync(path.join(temp.dir, "nowhere", "gateways"))).toBe(false);
  });

  it("cert show exits 2 for a file that is not a certificate", () => {
    const result = run(["cert", "show", path.join(pkiDir, "ca.key.pem")], temp.dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("ca.key.pem");
    expectNoStackTrace(result);
  });

  it("--help exits 0 and lists the commands", () => {
    const result = run(["--help"], temp.dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/ca\s+the certificate authority/);
    expect(result.stdout).toMatch(/cert\s+device and service certificates/);
  });
});
