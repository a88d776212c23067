import { describeError } from "@edgemeter/shared";
import type { Logger } from "pino";
import type { MeterDataStore } from "../store/meterData.js";

export interface SilenceSweeperOptions {
  meterData: MeterDataStore;
  logger: Logger;
  /** A meter silent for longer than this is in outage. */
  silenceMs: number;
  /** How often to look; a minute is plenty against silences of several poll intervals. */
  everyMs?: number;
  now?: () => Date;
}

/**
 * Opens a 'silence' outage for meters that stopped reporting (DESIGN issue 6: "silence longer
 * than a configured number of poll intervals"); readings resuming end it (the store does that
 * at ingest). With several instances each sweeps: the one-open-outage-per-meter index makes
 * the duplicates no-ops.
 */
export class SilenceSweeper {
  readonly #options: SilenceSweeperOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;
  /** Sweeps that failed (database unreachable…); the next tick tries again. */
  failures = 0;
  opened = 0;

  constructor(options: SilenceSweeperOptions) {
    this.#options = options;
  }

  start(): void {
    const everyMs = this.#options.everyMs ?? 60_000;
    this.#timer = setInterval(() => {
      if (this.#running === null) this.#running = this.sweep().finally(() => (this.#running = null));
    }, everyMs);
    this.#timer.unref();
  }

  async sweep(): Promise<number> {
    const now = (this.#options.now ?? (() => new Date()))();
    try {
      const opened = await this.#options.meterData.openSilenceOutages(now, this.#options.silenceMs);
      this.opened += opened;
      if (opened > 0) this.#options.logger.info({ opened }, "silent meters: outages opened");
      return opened;
    } catch (error) {
      this.failures += 1;
      this.#options.logger.warn({ err: describeError(error) }, "silence sweep failed; retrying next tick");
      return 0;
    }
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running;
  }
}
