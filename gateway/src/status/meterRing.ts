/**
 * A fixed-size ring of chart points for one meter: the last hour at one point per
 * `minSpacingMs`, in typed arrays, so memory stays bounded whatever the poll interval
 * (3,600 points × 6 columns × 8 bytes ≈ 170 KB per meter at most).
 */
export class MeterRing {
  private readonly ts: Float64Array;
  private readonly columns: Float64Array[];
  private head = 0;
  private size = 0;

  constructor(
    readonly names: readonly string[],
    readonly windowMs: number,
    readonly minSpacingMs: number,
  ) {
    const capacity = Math.ceil(windowMs / minSpacingMs) + 1;
    this.ts = new Float64Array(capacity);
    this.columns = names.map(() => new Float64Array(capacity).fill(Number.NaN));
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
      (this.columns[i] as Float64Array)[this.head] = typeof value === "number" ? value : Number.NaN;
    });
    this.head = (this.head + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  /** Points with ts > nowMs - windowMs, oldest first; NaN (a value not read) becomes null. */
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
        const v = (this.columns[c] as Float64Array)[i] as number;
        (series[name] as (number | null)[]).push(Number.isNaN(v) ? null : v);
      });
    }
    return { tsMs, series };
  }
}
