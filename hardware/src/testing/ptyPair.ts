import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { findBinary, tempDir, waitFor } from "@edgemeter/shared/testing";

/**
 * Test helper: a pair of connected pseudo-terminals made by socat, standing in for the two
 * ends of an RS-485 line (a USB adapter on the gateway, the meters on the far side).
 */
export interface PtyPair {
  /** One end (give it to the simulator or a slave). */
  slavePath: string;
  /** The other end (give it to the gateway / master). */
  masterPath: string;
  close(): Promise<void>;
}

export function socatBinary(): string | null {
  return findBinary("socat", ["/usr/bin/socat"]);
}

/** Starts socat with two raw ptys, linked as <tmp>/slave and <tmp>/master. Throws if socat is missing. */
export async function startPtyPair(): Promise<PtyPair> {
  const socat = socatBinary();
  if (socat === null) throw new Error("socat is not installed (apt-get install socat)");
  const temp = tempDir("pty");
  const slavePath = path.join(temp.dir, "slave");
  const masterPath = path.join(temp.dir, "master");
  const child: ChildProcess = spawn(socat, [`pty,raw,echo=0,link=${slavePath}`, `pty,raw,echo=0,link=${masterPath}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    await waitFor(
      () =>
        child.exitCode !== null
          ? Promise.reject(new Error(stderr))
          : existsSync(slavePath) && existsSync(masterPath)
            ? true
            : undefined,
      "socat pty pair",
      10_000,
      20,
    );
  } catch (error) {
    child.kill("SIGTERM");
    temp.remove();
    throw error;
  }
  return {
    slavePath,
    masterPath,
    close: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      temp.remove();
    },
  };
}
