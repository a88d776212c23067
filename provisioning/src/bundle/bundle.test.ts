/**
 * `edgemeter-provision bundle` as a user runs it: the compiled CLIs (provisioning and gateway)
 * in child processes, checked by exit code, output and the files left on the "SD card".
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parsePasswordHash, verifyPassword } from "@edgemeter/shared";
import { tempDir } from "@edgemeter/shared/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCertificateInfo } from "../pki/info.js";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const PROVISION_CLI = path.join(REPO_ROOT, "provisioning", "dist", "cli.js");
const GATEWAY_CLI = path.join(REPO_ROOT, "gateway", "dist", "cli.js");

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cli: string, args: readonly string[], cwd: string): RunResult {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: "utf8" });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const BUNDLE_FILES = ["ca.pem", "cert.pem", "gateway.yaml", "key.pem", "technician-password.scrypt"];

/** What a technician does with the skeleton: uncomment the example bus (`  #- ` / `  #  ` lines). */
function uncommentExampleBus(yaml: string): string {
  return yaml.replace(/^ {2}#(?=- | {2})/gm, "  ");
}

describe("edgemeter-provision bundle", () => {
  const temp = tempDir("bundle");
  const pkiDir = path.join(temp.dir, "pki");

  beforeAll(() => {
    // Both binaries are tsc output: build them so the test never runs stale code.
    const build = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, "node_modules", "typescript", "bin", "tsc"), "-b", "provisioning", "gateway"],
      { cwd: REPO_ROOT, encoding: "utf8" },
    );
    if (build.status !== 0) throw new Error(`tsc -b failed:\n${build.stdout}${build.stderr}`);
    const ca = run(PROVISION_CLI, ["ca", "init", "--dir", pkiDir], temp.dir);
    if (ca.code !== 0) throw new Error(`ca init failed:\n${ca.stderr}`);
  }, 180_000);
  afterAll(() => temp.remove());

  it("issues the certificate and writes key, cert, CA, hash and config, all 0600, with a generated password", async () => {
    const out = path.join(temp.dir, "sd-generated");
    const result = run(PROVISION_CLI, ["bundle", "--gateway", "gw-7", "--out", out, "--dir", pkiDir], temp.dir);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("issued its certificate");

    expect(readdirSync(out).sort()).toEqual(BUNDLE_FILES);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    for (const name of BUNDLE_FILES) expect(statSync(path.join(out, name)).mode & 0o777, name).toBe(0o600);

    const cert = readCertificateInfo(readFileSync(path.join(out, "cert.pem"), "utf8"));
    expect(cert.subject).toContain("CN=gw-7");
    expect(readFileSync(path.join(out, "ca.pem"), "utf8")).toBe(readFileSync(path.join(pkiDir, "ca.cert.pem"), "utf8"));
    expect(readFileSync(path.join(out, "key.pem"), "utf8")).toBe(
      readFileSync(path.join(pkiDir, "gateways", "gw-7", "key.pem"), "utf8"),
    );

    const password = /^technician-password: (\S+)$/m.exec(result.stdout)?.[1];
    expect(password).toMatch(/^[\w-]{16}$/);
    const hash = parsePasswordHash(readFileSync(path.join(out, "technician-password.scrypt"), "utf8"), "bundle");
    await expect(verifyPassword(password ?? "", hash)).resolves.toBe(true);
    await expect(verifyPassword(`${password}x`, hash)).resolves.toBe(false);
    // Only the hash is stored: the password is in no file of the bundle.
    for (const name of BUNDLE_FILES) expect(readFileSync(path.join(out, name), "utf8")).not.toContain(password);
  });

  it("stores the hash of a password given in a file, and refuses a short or unreadable one", async () => {
    const passwordFile = path.join(temp.dir, "password.txt");
    writeFileSync(passwordFile, "cabinet seven\nignored second line\n");
    const out = path.join(temp.dir, "sd-given");
    const result = run(
      PROVISION_CLI,
      ["bundle", "--gateway", "gw-7", "--out", out, "--dir", pkiDir, "--password-file", passwordFile],
      temp.dir,
    );
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("technician-password:");
    expect(result.stdout).not.toContain("issued its certificate"); // gw-7 exists: reused
    const hash = parsePasswordHash(readFileSync(path.join(out, "technician-password.scrypt"), "utf8"), "bundle");
    await expect(verifyPassword("cabinet seven", hash)).resolves.toBe(true);
    await expect(verifyPassword("cabinet eight", hash)).resolves.toBe(false);

    writeFileSync(passwordFile, "short\n");
    const short = run(
      PROVISION_CLI,
      [
        "bundle",
        "--gateway",
        "gw-8",
        "--out",
        path.join(temp.dir, "sd-short"),
        "--dir",
        pkiDir,
        "--password-file",
        passwordFile,
      ],
      temp.dir,
    );
    expect(short.code).toBe(2);
    expect(short.stderr).toContain(`${passwordFile}: the technician password on its first line must be at least 8`);
    const missing = path.join(temp.dir, "no-such-password");
    const unreadable = run(
      PROVISION_CLI,
      [
        "bundle",
        "--gateway",
        "gw-8",
        "--out",
        path.join(temp.dir, "sd-short"),
        "--dir",
        pkiDir,
        "--password-file",
        missing,
      ],
      temp.dir,
    );
    expect(unreadable.code).toBe(2);
    expect(unreadable.stderr).toContain(`${missing}: cannot read the technician password`);
  });

  it("writes a gateway.yaml that edgemeter-gateway check-config accepts once a meter is added", () => {
    const out = path.join(temp.dir, "sd-config");
    const bundle = run(
      PROVISION_CLI,
      [
        ...["bundle", "--gateway", "gw-9", "--out", out, "--dir", pkiDir],
        ...["--broker-url", "mqtts://broker.example.net:8883", "--protocol", "4"],
      ],
      temp.dir,
    );
    expect(bundle.code).toBe(0);
    const configFile = path.join(out, "gateway.yaml");
    const skeleton = readFileSync(configFile, "utf8");
    expect(skeleton).toContain('url: "mqtts://broker.example.net:8883"');
    expect(skeleton).toContain("protocolVersion: 4");

    // As written there is no meter: check-config says so (and nothing else is wrong).
    const empty = run(GATEWAY_CLI, ["check-config", "--config", configFile], temp.dir);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain(`${configFile}: buses:`);
    expect(empty.stderr.trim().split("\n")).toHaveLength(2);

    writeFileSync(configFile, uncommentExampleBus(skeleton));
    const withMeter = run(GATEWAY_CLI, ["check-config", "--config", configFile], temp.dir);
    expect(withMeter.stderr).toBe("");
    expect(withMeter.code).toBe(0);
  });

  it("refuses to overwrite an existing bundle without --force, and replaces it with --force", () => {
    const out = path.join(temp.dir, "sd-twice");
    const args = ["bundle", "--gateway", "gw-10", "--out", out, "--dir", pkiDir];
    expect(run(PROVISION_CLI, args, temp.dir).code).toBe(0);
    const hashFile = path.join(out, "technician-password.scrypt");
    const firstHash = readFileSync(hashFile, "utf8");

    const again = run(PROVISION_CLI, args, temp.dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${out}: already holds a bundle`);
    expect(again.stderr).toContain("--force");
    expect(readFileSync(hashFile, "utf8")).toBe(firstHash);

    const forced = run(PROVISION_CLI, [...args, "--force"], temp.dir);
    expect(forced.code).toBe(0);
    expect(readFileSync(hashFile, "utf8")).not.toBe(firstHash);
  });

  it("names the bad input: gateway id, broker URL, protocol, missing CA", () => {
    const out = path.join(temp.dir, "sd-bad");
    const cases: [string[], string][] = [
      [["--gateway", "bad id!", "--dir", pkiDir], '--gateway "bad id!": not a gateway id'],
      [["--gateway", "gw-11", "--dir", pkiDir, "--broker-url", "mqtt://plain:1883"], "--broker-url"],
      [["--gateway", "gw-11", "--dir", pkiDir, "--protocol", "3"], "--protocol"],
      [["--gateway", "gw-11", "--dir", path.join(temp.dir, "no-pki")], "CA"],
    ];
    for (const [args, message] of cases) {
      const result = run(PROVISION_CLI, ["bundle", "--out", out, ...args], temp.dir);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toContain(message);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
    expect(() => statSync(path.join(out, "gateway.yaml"))).toThrow();
  });
});
