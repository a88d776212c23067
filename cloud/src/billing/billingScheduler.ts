import { Cron } from "croner";
import type { Logger } from "pino";
import type { SqlClient } from "../store/sqlClient.js";
import { type RunSummary, runBilling } from "./billingRun.js";
import { calendarFor, formatPeriod, previousPeriod } from "./periods.js";

/**
 * Runs the bill run on day `dayOfMonth` at `hour`:00 in the utility's zone (default: the 1st at
 * 08:00) for the month before. Every cloud instance runs a scheduler; the run's PostgreSQL
 * advisory lock and its "already billed by the schedule" check make exactly one of them bill.
 *
 * croner evaluates the cron pattern `0 H D * *` in the IANA zone (DST-correct: a fire time that
 * falls in a skipped hour moves, a repeated hour fires once); the timer that waits for it is ours,
 * so that it reads the injectable clock (tests, and a gateway-style fake clock) and is re-armed at
 * most every 24 days (setTimeout's 2^31 ms limit).
 */
export interface BillingScheduleOptions {
  sql: SqlClient;
  logger: Logger;
  zone: string;
  dayOfMonth?: number;
  hour?: number;
  now?: () => Date;
  /** Told the outcome of each fired run (tests, metrics). */
  onRun?: (summary: RunSummary) => void;
}

const MAX_TIMER_MS = 24 * 24 * 3_600_000;

export class BillingScheduler {
  readonly #options: BillingScheduleOptions;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> = Promise.resolve();
  #stopped = true;

  constructor(options: BillingScheduleOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: "billingScheduler" });
  }

  /** The cron pattern the schedule follows, in the utility's zone. */
  get pattern(): string {
    return `0 ${this.#options.hour ?? 8} ${this.#options.dayOfMonth ?? 1} * *`;
  }

  /** The next fire instant strictly after `after` (UTC ms) and the period it bills (the month before). */
  nextFire(afterMs: number): { atMs: number; period: string } {
    const cron = new Cron(this.pattern, { timezone: this.#options.zone, paused: true });
    const next = cron.nextRun(new Date(afterMs));
    cron.stop();
    if (next === null) throw new Error(`cron pattern ${this.pattern} has no next run`);
    const local = calendarFor(this.#options.zone).localTime(next.getTime());
    return { atMs: next.getTime(), period: previousPeriod(formatPeriod(local.year, local.month)) };
  }

  start(): void {
    this.#stopped = false;
    this.#arm();
  }

  #arm(): void {
    if (this.#stopped) return;
    const now = (this.#options.now ?? (() => new Date()))().getTime();
    const next = this.nextFire(now);
    const delayMs = Math.min(next.atMs - now, MAX_TIMER_MS);
    this.#logger.debug({ next: new Date(next.atMs).toISOString(), period: next.period }, "next bill run");
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (delayMs < next.atMs - now) return this.#arm();
      this.#running = this.#fire(next.period).finally(() => this.#arm());
    }, delayMs);
    this.#timer.unref();
  }

  async #fire(period: string): Promise<void> {
    try {
      const summary = await runBilling(this.#options.sql, {
        period,
        dryRun: false,
        trigger: "schedule",
        defaultZone: this.#options.zone,
        now: this.#options.now ?? (() => new Date()),
        logger: this.#logger,
      });
      this.#options.onRun?.(summary);
    } catch (error) {
      this.#logger.error({ err: error, period }, "scheduled bill run failed");
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#running;
  }
}
