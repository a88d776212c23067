import { spawn } from "node:child_process";
import path from "node:path";
import { findBinary, requireService, tempDir, waitFor } from "@edgemeter/shared/testing";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../logging/logger.js";
import { SdNotifier } from "./sdNotify.js";

const havePython = requireService(
  "python3",
  findBinary("python3", ["/usr/bin/python3"]) !== null,
  "apt install python3",
);

/** A stand-in for systemd's notify socket: a real AF_UNIX datagram socket, one line per datagram received. */
function notifySocket(file: string) {
  const receiver = spawn(
    "python3",
    [
      "-u",
      "-c",
      `import socket,sys
s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound",flush=True)
while True:
    print(repr(s.recv(4096).decode()),flush=True)`,
      file,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines: string[] = [];
  receiver.stdout.on("data", (chunk: Buffer) => lines.push(...chunk.toString().split("\n").filter(Boolean)));
  return { lines, stop: () => receiver.kill("SIGKILL") };
}

describe.runIf(havePython)("SdNotifier against a real unix datagram socket", () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  it("sends READY with a status, pings the watchdog at half its interval, and STOPPING", async () => {
    const temp = tempDir("notify");
    cleanups.push(temp.remove);
    const file = path.join(temp.dir, "notify.sock");
    const socket = notifySocket(file);
    cleanups.unshift(socket.stop);
    await waitFor(() => (socket.lines.includes("bound") ? true : undefined), "socket bound");

    const notifier = new SdNotifier({
      env: { NOTIFY_SOCKET: file, WATCHDOG_USEC: "200000", WATCHDOG_PID: String(process.pid), PATH: process.env.PATH },
      logger: silentLogger(),
    });
    cleanups.unshift(() => notifier.stopping());
    expect(notifier.enabled).toBe(true);
    expect(notifier.watchdogMs()).toBe(200);
    notifier.ready("polling 2 meters");
    await waitFor(() => (socket.lines.filter((l) => l === "'WATCHDOG=1'").length >= 2 ? true : undefined), "two pings");
    // One datagram holding both assignments, as sd_notify(3) sends them.
    expect(socket.lines[1]).toBe("'READY=1\\nSTATUS=polling 2 meters'");
    notifier.stopping();
    await waitFor(() => (socket.lines.includes("'STOPPING=1'") ? true : undefined), "STOPPING");
  });

  it("does nothing without NOTIFY_SOCKET, and ignores a watchdog meant for another pid", () => {
    expect(new SdNotifier({ env: {}, logger: silentLogger() }).enabled).toBe(false);
    const other = new SdNotifier({
      env: { NOTIFY_SOCKET: "/x", WATCHDOG_USEC: "1000", WATCHDOG_PID: "1" },
      logger: silentLogger(),
    });
    expect(other.watchdogMs()).toBeNull();
  });
});
