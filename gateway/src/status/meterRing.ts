/** Significant decimal digits a 32-bit float always holds (6 exactly, FLT_DIG; the 7th is right to within one unit). */
const FLOAT32_DIGITS = 7;

/**
 * A fixed-size ring of chart points for one meter: the last `windowMs` at one point per
 * `minSpacingMs`, in typed arrays, so memory stays bounded whatever the poll interval.
 * Values are kept as 32-bit floats: ~7 significant digits is far finer than a chart's pixel
 * (0.0001 V at 230 V) and halves the rings (8 bytes of time + 5 columns × 4 bytes = 28 bytes
 * a point instead of 48). Time stays a 64-bit float: epoch milliseconds need 41 bits.
 */
export class MeterRing {
  private readonly ts: Float64Array;
  private readonly columns: Float32Array[];
  private head = 0;
  private size = 0;

  constructor(
    readonly names: readonly string[],
    readonly windowMs: number,
    readonly minSpacingMs: number,
  ) {
    const capacity = Math.ceil(windowMs / minSpacingMs) + 1;
    this.ts = new Float64Array(capacity);
    this.columns = names.map(() => new Float32Array(capacity).fill(Number.NaN));
  }

  get capacity(): number {
    return this.ts.length;
  }

  /** Adds a point; a point closer than minSpacingMs to the previous one replaces nothing and is dropped. */
  push(tsMs: number, values: Readonly<Record<string, number>>): void {
    if (this.size > 0) {
      const last = this.ts[(this.head - 1 + this.capacity) % this.capacity] as number;
      if (tsMs - last < this.minSpacingMs) return;
    }
    this.ts[this.head] = tsMs;
    this.names.forEach((name, i) => {
      const value = values[name];
      (this.columns[i] as Float32Array)[this.head] = typeof value === "number" ? value : Number.NaN;
    });
    this.head = (this.head + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  /**
   * Points with ts > nowMs - windowMs, oldest first; NaN (a value not read) becomes null.
   * Values come back at the 7 significant digits a 32-bit float holds (230.1, not
   * 230.10000610351562), so the JSON stays short.
   */
  read(nowMs: number): { tsMs: number[]; series: Record<string, (number | null)[]> } {
    const tsMs: number[] = [];
    const series: Record<string, (number | null)[]> = Object.fromEntries(this.names.map((n) => [n, []]));
    const from = nowMs - this.windowMs;
    for (let k = 0; k < this.size; k++) {
      const i = (this.head - this.size + k + this.capacity) % this.capacity;
      const t = this.ts[i] as number;
      if (t <= from) continue;
      tsMs.push(t);
      this.names.forEach((name, c) => {
        const v = (this.columns[c] as Float32Array)[i] as number;
        (series[name] as (number | null)[]).push(Number.isNaN(v) ? null : Number(v.toPrecision(FLOAT32_DIGITS)));
      });
    }
    return { tsMs, series };
  }
}

/** The chart history a meter keeps: where the detail ends and how coarse the rest is. */
export interface ChartHistoryShape {
  /** The whole history (1 h on the status page). */
  windowMs: number;
  /** The most recent part kept at one point per `recentSpacingMs` (10 min). */
  recentWindowMs: number;
  recentSpacingMs: number;
  /** Before that, one point per `olderSpacingMs` (10 s). */
  olderSpacingMs: number;
}

export const STATUS_PAGE_HISTORY: ChartHistoryShape = {
  windowMs: 3_600_000,
  recentWindowMs: 600_000,
  recentSpacingMs: 1_000,
  olderSpacingMs: 10_000,
};

/**
 * A meter's chart history in two rings: the last `recentWindowMs` at full detail (one point
 * per second: a sag or a power step is seen as it happened), the rest of the window at one
 * point per `olderSpacingMs` (a sample every 10 s, not an average: what was read, at the
 * time it was read). A fault between two older points is in the event list, not the chart.
 * Memory (issue 4 footprint): 601 + 361 points instead of 3,601, ~27 KB per meter instead of
 * ~100 KB; for 32 meters 0.86 MB instead of 3.2 MB, allocated at start.
 */
export class ChartHistory {
  private readonly recent: MeterRing;
  private readonly older: MeterRing;

  constructor(names: readonly string[], shape: ChartHistoryShape = STATUS_PAGE_HISTORY) {
    this.recent = new MeterRing(names, shape.recentWindowMs, shape.recentSpacingMs);
    this.older = new MeterRing(names, shape.windowMs, shape.olderSpacingMs);
  }

  /** Points either ring holds: what the history costs. */
  get capacity(): number {
    return this.recent.capacity + this.older.capacity;
  }

  push(tsMs: number, values: Readonly<Record<string, number>>): void {
    this.recent.push(tsMs, values);
    this.older.push(tsMs, values);
  }

  /** The older points before the first recent one, then the recent ones: oldest first, as MeterRing.read. */
  read(nowMs: number): { tsMs: number[]; series: Record<string, (number | null)[]> } {
    const recent = this.recent.read(nowMs);
    const older = this.older.read(nowMs);
    const firstRecent = recent.tsMs[0];
    if (firstRecent === undefined) return older;
    let keep = 0;
    while (keep < older.tsMs.length && (older.tsMs[keep] as number) < firstRecent) keep++;
    return {
      tsMs: [...older.tsMs.slice(0, keep), ...recent.tsMs],
      series: Object.fromEntries(
        Object.entries(recent.series).map(([name, values]) => [
          name,
          [...(older.series[name] ?? []).slice(0, keep), ...values],
        ]),
      ),
    };
  }
}
