import type { z } from "zod";
import { EdgemeterError, type ErrorCode } from "./errors.js";

/** One problem found in an input, located by where (file, topic, request) and path. */
export interface InputIssue {
  where: string;
  path: string;
  message: string;
}

/** Turns zod issues into `where: path: message` lines (CONVENTIONS §6). */
export function toInputIssues(where: string, issues: readonly z.core.$ZodIssue[]): InputIssue[] {
  return issues.map((issue) => ({
    where,
    path: issue.path.length === 0 ? "(root)" : issue.path.map(String).join("."),
    message: issue.message,
  }));
}

export function formatInputIssues(issues: readonly InputIssue[]): string {
  return issues.map((i) => `${i.where}: ${i.path}: ${i.message}`).join("\n");
}

/**
 * Parses `input` with `schema`, or throws one EdgemeterError listing every problem.
 * The error's context carries the issues for callers that store or count them.
 */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  input: unknown,
  where: string,
  code: ErrorCode,
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = toInputIssues(where, result.error.issues);
  throw new EdgemeterError(code, formatInputIssues(issues), { context: { issues } });
}
