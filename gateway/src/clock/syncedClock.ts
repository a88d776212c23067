import { existsSync, readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { Clock } from "../time/clock.js";

/**
 * Where the kernel's "clock synchronised" state can be read without a native addon.
 *
 * The kernel keeps it as the STA_UNSYNC bit of adjtimex(2) (`timedatectl` shows it as "System
 * clock synchronized"), but Node has no adjtimex binding and shelling out to timedatectl needs
 * D-Bus. systemd-timesyncd, Raspberry Pi OS's default NTP client, touches
 * /run/systemd/timesync/synchronized each time it has set the clock from a server
 * (systemd ≥ 239, systemd-timesyncd.service(8)): a file in tmpfs, so it is gone after every
 * reboot until the first sync of that boot. That is exactly the signal we need. With chrony
 * instead, point `syncedFile` at a file a `chronyc waitsync && touch …` unit creates.
 */
export const TIMESYNCD_SYNCED_FILE = "/run/systemd/timesync/synchronized";

/**
 * Never plausible: a Pi without RTC boots at 1970 or the fake-hwclock time; anything before this
 * release was built is certainly wrong, whatever the sync file says.
 */
const EARLIEST_PLAUSIBLE_MS = Date.UTC(2025, 0, 1);

export interface SyncedClockOptions {
  /** The file whose existence means "synchronised"; null: trust the wall clock (tests, chrony without a hook). */
  syncedFile: string | null;
  /** How often to look at the file while unsynced. */
  pollMs: number;
  /** Called once, at the transition to synced, with wall - boot monotonic (ms) at that moment. */
  onSync?: (wallMinusMonotonicMs: number) => void;
  logger: Logger;
  /** The underlying clock (system clock in production). */
  base: Clock;
  /** Boot-relative monotonic ms; defaults to /proc/uptime at start + the base clock's monotonic delta. */
  bootMonotonicMs?: () => number;
  /** Identifies this boot; defaults to /proc/sys/kernel/random/boot_id. */
  bootId?: string;
}

/**
 * A Clock whose isSynced() follows the kernel's sync status (see TIMESYNCD_SYNCED_FILE), and
 * which knows where each moment sits on this boot's monotonic clock, so readings taken before
 * the sync can be re-stamped after it (DESIGN "Time"). seq is never derived from time: a wall
 * clock that jumps backwards at sync cannot reorder or duplicate it.
 */
export class SyncedClock implements Clock {
  readonly bootId: string;
  private synced = false;
  private readonly bootMonotonic: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SyncedClockOptions) {
    this.bootId = options.bootId ?? readBootId();
    this.bootMonotonic = options.bootMonotonicMs ?? bootMonotonicFrom(options.base);
  }

  nowMs(): number {
    return this.options.base.nowMs();
  }

  monotonicMs(): number {
    return this.options.base.monotonicMs();
  }

  sleep(durationMs: number, signal?: AbortSignal): Promise<void> {
    return this.options.base.sleep(durationMs, signal);
  }

  isSynced(): boolean {
    return this.synced;
  }

  /** This moment on the boot's monotonic clock (ms since boot). */
  bootMonotonicMs(): number {
    return this.bootMonotonic();
  }

  /** Where a wall time taken a moment ago sits on the boot's monotonic clock. Exact while the wall clock does not jump. */
  bootMonotonicMsOfWall(wallMs: number): number {
    return wallMs - (this.nowMs() - this.bootMonotonic());
  }

  /** Checks now, then every pollMs until synced. */
  start(): void {
    this.check();
    if (!this.synced && this.timer === undefined) {
      this.timer = setInterval(() => this.check(), this.options.pollMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Looks once; on the transition to synced calls onSync (before isSynced() turns true). */
  check(): boolean {
    if (this.synced) return true;
    const { syncedFile } = this.options;
    const signalled = syncedFile === null || existsSync(syncedFile);
    if (!signalled || this.nowMs() < EARLIEST_PLAUSIBLE_MS) return false;
    const wallMinusMonotonicMs = this.nowMs() - this.bootMonotonic();
    this.options.logger.info(
      { syncedFile, bootId: this.bootId, wallTime: new Date(this.nowMs()).toISOString() },
      "system clock synchronised: re-stamping readings taken before",
    );
    // Re-stamp first, then flip: whoever holds unsynced readings back until isSynced() never
    // sees "synced" while old stamps are still in the outbox.
    this.options.onSync?.(wallMinusMonotonicMs);
    this.synced = true;
    this.stop();
    return true;
  }
}

/** The kernel's random id of this boot (proc(5)); a fixed stand-in where /proc is missing. */
export function readBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown-boot";
  }
}

/**
 * Boot-relative monotonic ms: /proc/uptime (CLOCK_BOOTTIME, 10 ms resolution) read once,
 * advanced by the process's monotonic clock. A restart of the gateway in the same boot lands on
 * the same scale, so readings from before the restart are re-stamped correctly too.
 */
function bootMonotonicFrom(base: Clock): () => number {
  let originMs: number;
  try {
    originMs = Number.parseFloat(readFileSync("/proc/uptime", "utf8").split(" ")[0] ?? "0") * 1_000;
  } catch {
    originMs = 0;
  }
  const startMono = base.monotonicMs();
  return () => originMs + (base.monotonicMs() - startMono);
}
