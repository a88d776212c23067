export type { ApiErrorBody, ApiErrorCode, ApiErrorDetail } from "./apiErrors.js";
export { type ApiScope, hashApiKey } from "./auth.js";
export { type BuildApiOptions, buildApi } from "./buildApi.js";
