import { describeError, EdgemeterError } from "@edgemeter/shared";

/**
 * SQLSTATE classes and codes after which the same statement may succeed when tried again
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html): connection exceptions
 * (08), insufficient resources (53), operator intervention such as a server shutting down
 * or restarting (57P01-57P03), and the transaction rollbacks a concurrent writer causes
 * (40001 serialisation failure, 40P01 deadlock).
 */
const RETRYABLE_SQLSTATE_CLASSES = ["08", "53"];
const RETRYABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "40001", "40P01", "55P03"]);
/** Socket-level failures reported by node (pg raises them as-is). */
const RETRYABLE_NODE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);
/** pg reports a lost or unobtainable connection only through its message. */
const RETRYABLE_MESSAGES = [
  /Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
];

function codeOf(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

export function isRetryableSqlError(error: unknown): boolean {
  const code = codeOf(error);
  if (code !== undefined) {
    if (RETRYABLE_NODE_CODES.has(code) || RETRYABLE_SQLSTATES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && RETRYABLE_SQLSTATE_CLASSES.includes(code.slice(0, 2))) return true;
  }
  const message = describeError(error);
  return RETRYABLE_MESSAGES.some((pattern) => pattern.test(message));
}

/**
 * Wraps a driver error in the one error type. The SQL text and parameters stay out of the
 * message and context: parameters can hold key hashes and payloads that do not belong in logs.
 */
export function toStorageError(error: unknown, operation: string): EdgemeterError {
  if (error instanceof EdgemeterError) return error;
  const sqlState = codeOf(error);
  const retryable = isRetryableSqlError(error);
  return new EdgemeterError(
    retryable ? "storage.unavailable" : "storage.query",
    `${operation} failed: ${describeError(error)}`,
    { cause: error, retryable, context: sqlState === undefined ? {} : { sqlState } },
  );
}

/** SQLSTATE of a wrapped or raw driver error, if any. */
export function sqlStateOf(error: unknown): string | undefined {
  if (error instanceof EdgemeterError) {
    const sqlState = error.context.sqlState;
    return typeof sqlState === "string" ? sqlState : undefined;
  }
  return codeOf(error);
}
