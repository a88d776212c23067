import { EdgemeterError } from "@edgemeter/shared";

/** A moment as a tariff sees it: local calendar fields in the meter's time zone. */
export interface LocalTime {
  year: number;
  /** 1–12 */
  month: number;
  /** 1–31 */
  day: number;
  /** 0–23, local wall clock */
  hour: number;
  /** 0 = Sunday … 6 = Saturday */
  weekday: number;
}

/** Maps a UTC instant to local calendar fields. Pure; implementations cache. */
export interface BillingCalendar {
  readonly name: string;
  localTime(utcMs: number): LocalTime;
}

const HOUR_MS = 3_600_000;
const QUARTER_MS = 900_000;

/** Throws config.timeZone unless `zone` is an IANA zone Node's ICU knows. */
export function assertTimeZone(zone: string, where: string): void {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
  } catch (cause) {
    throw new EdgemeterError("config.timeZone", `${where}: unknown IANA time zone "${zone}"`, { cause });
  }
}

/**
 * Local time in an IANA zone through Intl (ICU's tz database, so DST rules are the official
 * ones). The zone's UTC offset is cached per UTC quarter-hour (every zone's offset is a
 * multiple of 15 minutes, and offsets change only on such boundaries); fields are then plain
 * arithmetic, so billing thousands of meters costs one ICU call per quarter-hour of the month.
 */
export class ZoneCalendar implements BillingCalendar {
  readonly name: string;
  readonly #format: Intl.DateTimeFormat;
  readonly #offsetMs = new Map<number, number>();

  constructor(readonly zone: string) {
    assertTimeZone(zone, "time zone");
    this.name = zone;
    this.#format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    });
  }

  /** Local minus UTC, in ms, at `utcMs` (3,600,000 in Berlin in winter). */
  offsetMs(utcMs: number): number {
    const key = Math.floor(utcMs / QUARTER_MS);
    const cached = this.#offsetMs.get(key);
    if (cached !== undefined) return cached;
    const parts: Record<string, string> = {};
    for (const part of this.#format.formatToParts(new Date(key * QUARTER_MS))) parts[part.type] = part.value;
    const localAsUtc = Date.UTC(
      Number(parts.year),
      Number(parts.month) - 1,
      Number(parts.day),
      Number(parts.hour),
      Number(parts.minute),
    );
    const offset = localAsUtc - key * QUARTER_MS;
    if (this.#offsetMs.size > 500_000) this.#offsetMs.clear();
    this.#offsetMs.set(key, offset);
    return offset;
  }

  localTime(utcMs: number): LocalTime {
    const local = new Date(utcMs + this.offsetMs(utcMs));
    return {
      year: local.getUTCFullYear(),
      month: local.getUTCMonth() + 1,
      day: local.getUTCDate(),
      hour: local.getUTCHours(),
      weekday: local.getUTCDay(),
    };
  }

  /** The UTC instant of local midnight starting `year-month-day` (DST-correct; month/day may overflow). */
  localMidnightUtcMs(year: number, month: number, day: number): number {
    return this.localToUtcMs(year, month, day, 0);
  }

  /**
   * The UTC instant of a local wall-clock time: the naive guess corrected by the offset, twice
   * (the second pass settles guesses that straddle a DST change). For a local time that DST
   * skips, the instant after the gap is returned; for one it repeats, the first.
   */
  localToUtcMs(year: number, month: number, day: number, hour: number, minute = 0): number {
    const naive = Date.UTC(year, month - 1, day, hour, minute);
    let guess = naive - this.offsetMs(naive);
    const second = naive - this.offsetMs(guess);
    if (second !== guess) guess = Math.max(second, guess);
    // The earlier of two candidates when the local time is repeated (autumn).
    const earlier = guess - HOUR_MS;
    if (earlier + this.offsetMs(earlier) === naive) return earlier;
    return guess;
  }
}

/**
 * SAM's calendar (NREL System Advisor Model): a 365-day year starting on a Monday, no daylight
 * saving, no leap day; hour i of the 8,760-row load is `utcMs = i × 3,600,000` from epoch 0.
 * (https://sam.nrel.gov/ — "weekday/weekend schedules assume 1 January is a Monday".)
 */
export class SamCalendar implements BillingCalendar {
  readonly name = "sam";
  static readonly DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

  localTime(utcMs: number): LocalTime {
    const hourOfYear = Math.floor(utcMs / HOUR_MS) % 8760;
    let dayOfYear = Math.floor(hourOfYear / 24);
    const weekday = (1 + dayOfYear) % 7;
    let month = 0;
    while (dayOfYear >= (SamCalendar.DAYS_IN_MONTH[month] ?? 31)) {
      dayOfYear -= SamCalendar.DAYS_IN_MONTH[month] ?? 31;
      month++;
    }
    return { year: 1, month: month + 1, day: dayOfYear + 1, hour: hourOfYear % 24, weekday };
  }
}
