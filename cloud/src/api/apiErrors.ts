import { EdgemeterError, isEdgemeterError } from "@edgemeter/shared";

/** One located problem in a request: `path` names the request part and parameter (`querystring.from`). */
export interface ApiErrorDetail {
  path: string;
  message: string;
}

/** The one error shape of the API (DESIGN "The cloud API"): every non-2xx answer has this body. */
export interface ApiErrorBody {
  error: {
    code: string;
    message: string;
    details: ApiErrorDetail[];
  };
}

/** `api.*` codes and the HTTP status each one answers with. */
const API_STATUS = {
  "api.badRequest": 400,
  "api.unauthorized": 401,
  "api.forbidden": 403,
  "api.notFound": 404,
  "api.methodNotAllowed": 405,
  "api.payloadTooLarge": 413,
  "api.unsupportedMediaType": 415,
  "api.tooManyRequests": 429,
} as const satisfies Record<`api.${string}`, number>;

export type ApiErrorCode = keyof typeof API_STATUS;

/** Fastify's own 4xx errors (bad JSON body, bad URL…) carry a statusCode; this names them in our vocabulary. */
const CODE_FOR_STATUS: Record<number, ApiErrorCode> = {
  400: "api.badRequest",
  401: "api.unauthorized",
  403: "api.forbidden",
  404: "api.notFound",
  405: "api.methodNotAllowed",
  413: "api.payloadTooLarge",
  415: "api.unsupportedMediaType",
  429: "api.tooManyRequests",
};

/** An error the error handler answers with its status and these details. */
export function apiError(code: ApiErrorCode, message: string, details: ApiErrorDetail[] = []): EdgemeterError {
  return new EdgemeterError(code, message, { context: { details } });
}

export interface ErrorResponse {
  statusCode: number;
  body: ApiErrorBody;
  /** True when the failure is ours (a bug or an unreachable database), not the caller's. */
  serverFault: boolean;
}

function detailsOf(error: EdgemeterError): ApiErrorDetail[] {
  const details = error.context.details;
  return Array.isArray(details) ? (details as ApiErrorDetail[]) : [];
}

/**
 * Maps anything thrown while serving a request to a status and the JSON error body. Internal
 * messages never reach the caller (they may name tables or hosts); a retryable storage error is
 * a 503 so a client knows trying again later is right.
 */
export function toErrorResponse(error: unknown): ErrorResponse {
  if (isEdgemeterError(error)) {
    const status = Object.hasOwn(API_STATUS, error.code) ? API_STATUS[error.code as ApiErrorCode] : undefined;
    if (status !== undefined) {
      return {
        statusCode: status,
        body: { error: { code: error.code, message: error.message, details: detailsOf(error) } },
        serverFault: false,
      };
    }
    if (error.retryable) {
      return {
        statusCode: 503,
        body: {
          error: { code: "api.unavailable", message: "service temporarily unavailable, retry later", details: [] },
        },
        serverFault: true,
      };
    }
  } else if (isClientHttpError(error)) {
    return {
      statusCode: error.statusCode,
      body: {
        error: { code: CODE_FOR_STATUS[error.statusCode] ?? "api.badRequest", message: error.message, details: [] },
      },
      serverFault: false,
    };
  }
  return {
    statusCode: 500,
    body: { error: { code: "internal.error", message: "internal error", details: [] } },
    serverFault: true,
  };
}

function isClientHttpError(error: unknown): error is Error & { statusCode: number } {
  if (!(error instanceof Error)) return false;
  const statusCode = (error as { statusCode?: unknown }).statusCode;
  return typeof statusCode === "number" && statusCode >= 400 && statusCode < 500;
}
