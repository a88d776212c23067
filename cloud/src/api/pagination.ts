import { z } from "zod";
import type { Page } from "../store/store.js";

const DIGITS = /^\d+$/;

function integerParam(min: number, max: number) {
  return z
    .string({ error: "must be given once, as a whole number" })
    .regex(DIGITS, "must be a whole number")
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be between ${min} and ${max}`);
}

/**
 * `limit` and `offset` query parameters. Query strings arrive as strings; a repeated
 * parameter (`?limit=1&limit=2`) arrives as an array and is refused rather than guessed at.
 */
export function pageQuery(options: { defaultLimit: number; maxLimit: number }) {
  return {
    limit: integerParam(1, options.maxLimit).default(options.defaultLimit),
    offset: integerParam(0, Number.MAX_SAFE_INTEGER).default(0),
  };
}

export function pageOf(query: { limit: number; offset: number }): Page {
  return { limit: query.limit, offset: query.offset };
}
