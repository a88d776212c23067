/**
 * Test-only: a private Mosquitto on a free port, for tests that need broker behaviour
 * the shared one at 127.0.0.1:1883 does not have (an ACL that denies topics). Nothing in a
 * product path imports this.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import path from "node:path";
import { findBinary, freePort, probeTcp, tempDir, waitFor } from "@edgemeter/shared/testing";

export interface TestBroker {
  port: number;
  url: string;
  stop(): Promise<void>;
}

export function mosquittoBinary(): string | null {
  return findBinary("mosquitto", ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]);
}

/**
 * Starts `mosquitto` with anonymous access restricted by `aclLines` (Mosquitto acl_file
 * syntax; lines before any `user` line apply to anonymous clients).
 */
export async function startMosquitto(
  aclLines: readonly string[],
  options: { port?: number } = {},
): Promise<TestBroker> {
  const binary = mosquittoBinary();
  if (binary === null) throw new Error("mosquitto binary not found");
  const { dir, remove } = tempDir("mosquitto");
  // Started as root, mosquitto drops to the `mosquitto` user, which must read the ACL file.
  chmodSync(dir, 0o755);
  const port = options.port ?? (await freePort());
  const aclFile = path.join(dir, "acl");
  writeFileSync(aclFile, `${aclLines.join("\n")}\n`);
  const confFile = path.join(dir, "mosquitto.conf");
  writeFileSync(
    confFile,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      `acl_file ${aclFile}`,
      "persistence false",
      "log_dest stderr",
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn(binary, ["-c", confFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await waitFor(
      async () => ((await probeTcp("127.0.0.1", port, 200)) ? true : undefined),
      `mosquitto on ${port}`,
      10_000,
      50,
    );
  } catch (error) {
    child.kill("SIGKILL");
    remove();
    throw new Error(`${String(error)}\n${stderr}`);
  }
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      remove();
    },
  };
}
