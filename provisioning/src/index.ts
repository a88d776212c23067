export * from "./bundle/bundle.js";
export * from "./pki/ca.js";
export * from "./pki/info.js";
export * from "./pki/issue.js";
export * from "./pki/layout.js";
export { FILE_MODE } from "./pki/secretFiles.js";
