/**
 * The one error type of edgemeter (CONVENTIONS §5). Codes are grouped in families by
 * layer, so a log line or an API error says at a glance where a failure came from:
 *
 * | family       | layer                                   | examples                          |
 * |--------------|-----------------------------------------|-----------------------------------|
 * | `config.*`   | configuration files, CLI arguments      | `config.invalid`                  |
 * | `profile.*`  | meter profiles (hardware/profiles)      | `profile.invalid`                 |
 * | `modbus.*`   | bus transport, frames, meter answers    | `modbus.timeout`, `modbus.exception` |
 * | `storage.*`  | SQLite outbox, PostgreSQL store         | `storage.full`                    |
 * | `uplink.*`   | MQTT connection, publish acknowledgements | `uplink.rejected`               |
 * | `ingest.*`   | payloads arriving at the cloud          | `ingest.schema`, `ingest.gatewayMismatch` |
 * | `api.*`      | REST API                                | `api.badRequest`, `api.unauthorized` |
 * | `pki.*`      | certificate authority, certificates     | `pki.exists`                      |
 *
 * `retryable` says whether doing the same thing again may succeed (a timeout, a broker
 * restart) or never will (a denied publish, a malformed profile).
 */
export type ErrorFamily =
  | "config"
  | "profile"
  | "modbus"
  | "storage"
  | "uplink"
  | "ingest"
  | "api"
  | "pki"
  | "internal";

export type ErrorCode = `${ErrorFamily}.${string}`;

export interface EdgemeterErrorOptions {
  cause?: unknown;
  /** Structured facts for logs (never secrets). */
  context?: Record<string, unknown>;
  /** Defaults to false: an error is permanent unless its raiser knows better. */
  retryable?: boolean;
}

export class EdgemeterError extends Error {
  override readonly name = "EdgemeterError";
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly context: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: EdgemeterErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.context = options.context ?? {};
  }

  get family(): ErrorFamily {
    return this.code.slice(0, this.code.indexOf(".")) as ErrorFamily;
  }
}

export function isEdgemeterError(error: unknown, code?: ErrorCode): error is EdgemeterError {
  return error instanceof EdgemeterError && (code === undefined || error.code === code);
}

/** True when retrying the failed operation may succeed. Unknown errors count as permanent. */
export function isRetryable(error: unknown): boolean {
  return error instanceof EdgemeterError && error.retryable;
}

/** A readable one-line description of anything thrown. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
