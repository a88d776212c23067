/**
 * The one place that loads @peculiar/x509. It resolves its internals through tsyringe,
 * which throws at import time unless a Reflect metadata polyfill is already installed,
 * so `reflect-metadata` must be evaluated first (ES modules evaluate imports in order).
 * It then runs on Node's own WebCrypto: no second crypto implementation to trust.
 */
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto);

export { x509 };
/** Node's WebCrypto (the project compiles without the DOM lib, so its types come from node:crypto). */
export const crypto = webcrypto;
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
