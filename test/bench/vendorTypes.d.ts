// Minimal typings for the two benchmark-only packages that ship none (only what cloud.bench.ts uses).
declare module "autocannon" {
  interface AutocannonOptions {
    url: string;
    connections?: number;
    duration?: number;
    headers?: Record<string, string>;
  }
  interface AutocannonResult {
    latency: { p50: number; p90: number; p99: number; average: number; max: number };
    requests: { average: number; total: number };
    non2xx: number;
    errors: number;
  }
  export default function autocannon(options: AutocannonOptions): Promise<AutocannonResult>;
}

declare module "pg-copy-streams" {
  import type { Writable } from "node:stream";
  import type { Submittable } from "pg";
  export function from(sql: string): Writable & Submittable;
}
