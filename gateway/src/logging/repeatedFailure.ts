import type { Logger } from "pino";

/**
 * Logs a failure that may repeat every poll or every retry once at warn, then at debug
 * until it recovers (CONVENTIONS §8: spare the SD card), and logs the recovery at info.
 */
export class RepeatedFailure {
  private failing = false;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly what: string,
  ) {}

  get isFailing(): boolean {
    return this.failing;
  }

  fail(context: Record<string, unknown>, message: string): void {
    if (this.failing) {
      this.suppressed++;
      this.logger.debug(context, message);
      return;
    }
    this.failing = true;
    this.suppressed = 0;
    this.logger.warn(context, `${message} (repeats are logged at debug until ${this.what} recovers)`);
  }

  recover(context: Record<string, unknown> = {}): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.info({ ...context, suppressedFailures: this.suppressed }, `${this.what} recovered`);
  }
}
