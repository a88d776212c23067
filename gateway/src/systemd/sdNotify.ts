import { type ChildProcess, spawn } from "node:child_process";
import type { Logger } from "pino";

/**
 * sd_notify(3) for `Type=notify` with a watchdog, without a native addon.
 *
 * The protocol is one datagram per message on the AF_UNIX SOCK_DGRAM socket named by
 * $NOTIFY_SOCKET. Node's core cannot open a unix *datagram* socket (net is stream only, dgram
 * is UDP only), and the npm packages that can (sd-notify, unix-dgram) are native addons built
 * with node-gyp. Spawning `systemd-notify` per message races: systemd attributes a message to
 * a unit through the sender's cgroup, and a sender that already exited cannot be looked up
 * (systemd-notify(1), fixed only by the barrier of systemd ≥ 253; Raspberry Pi OS bookworm
 * ships 252). So we keep ONE long-lived helper, python3 (present on every Raspberry Pi OS
 * image), in the service's cgroup, that turns each stdin line into one datagram. The unit
 * therefore says `NotifyAccess=all` (the sender is the helper, not the main pid).
 */
const HELPER = `
import os, socket, sys
path = os.environ["NOTIFY_SOCKET"]
if path.startswith("@"):
    path = "\\0" + path[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for line in sys.stdin:
    message = line.rstrip("\\n").replace("\\\\n", "\\n")
    if message:
        try:
            s.sendto(message.encode(), path)
        except OSError as error:
            print("sd_notify: %s" % error, file=sys.stderr, flush=True)
`;

export interface SdNotifierOptions {
  env?: NodeJS.ProcessEnv;
  logger: Logger;
  /** The python3 binary; default "python3". */
  python?: string;
}

export class SdNotifier {
  private helper: ChildProcess | undefined;
  private watchdogTimer: NodeJS.Timeout | undefined;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly options: SdNotifierOptions) {
    this.env = options.env ?? process.env;
  }

  /** True when started by systemd with Type=notify. */
  get enabled(): boolean {
    return (this.env.NOTIFY_SOCKET ?? "") !== "";
  }

  /**
   * The watchdog interval systemd expects pings at (WatchdogSec), when it is meant for us
   * (WATCHDOG_PID absent or ours); null otherwise (sd_watchdog_enabled(3)).
   */
  watchdogMs(): number | null {
    const usec = Number(this.env.WATCHDOG_USEC ?? "");
    const pid = this.env.WATCHDOG_PID;
    if (!Number.isFinite(usec) || usec <= 0) return null;
    if (pid !== undefined && pid !== "" && Number(pid) !== process.pid) return null;
    return usec / 1_000;
  }

  /** Sends `READY=1` (plus a STATUS line) and starts pinging the watchdog at half its interval. */
  ready(status: string, healthy: () => boolean = () => true): void {
    this.send(`READY=1\nSTATUS=${status}`);
    const watchdogMs = this.watchdogMs();
    if (watchdogMs === null || this.watchdogTimer !== undefined) return;
    // Pings come from a timer on the event loop: a blocked loop (a hung native call, a busy
    // loop) stops them and systemd restarts us. `healthy` adds what a timer cannot see.
    this.watchdogTimer = setInterval(() => {
      if (healthy()) this.send("WATCHDOG=1");
      else this.options.logger.warn("not healthy: withholding the watchdog ping");
    }, watchdogMs / 2);
    this.watchdogTimer.unref();
  }

  status(text: string): void {
    this.send(`STATUS=${text}`);
  }

  /** `STOPPING=1`, then ends the helper. */
  stopping(): void {
    clearInterval(this.watchdogTimer);
    this.watchdogTimer = undefined;
    this.send("STOPPING=1");
    this.helper?.stdin?.end();
    this.helper = undefined;
  }

  /** One sd_notify message; newlines between assignments are written as a literal "\n". */
  send(message: string): void {
    if (!this.enabled) return;
    const helper = this.ensureHelper();
    helper?.stdin?.write(`${message.replaceAll("\n", "\\n")}\n`);
  }

  private ensureHelper(): ChildProcess | undefined {
    if (this.helper !== undefined) return this.helper;
    const helper = spawn(this.options.python ?? "python3", ["-u", "-c", HELPER], {
      env: { NOTIFY_SOCKET: this.env.NOTIFY_SOCKET ?? "", PATH: this.env.PATH ?? "/usr/bin:/bin" },
      stdio: ["pipe", "ignore", "pipe"],
    });
    helper.stderr?.on("data", (chunk: Buffer) =>
      this.options.logger.warn({ err: chunk.toString().trim() }, "sd_notify"),
    );
    helper.on("error", (error) =>
      this.options.logger.warn({ err: error.message }, "sd_notify helper (python3) failed: no readiness/watchdog"),
    );
    helper.on("exit", () => {
      if (this.helper === helper) this.helper = undefined;
    });
    helper.stdin?.on("error", () => undefined);
    helper.unref();
    this.helper = helper;
    return helper;
  }
}
