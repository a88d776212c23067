import { randomBytes } from "node:crypto";

/**
 * Server-side sessions: the cookie holds only a random 256-bit token. In memory on purpose:
 * a gateway restart logs the technician out, which costs one login and keeps secrets off
 * the SD card.
 */
const MAX_SESSIONS = 64;

export class SessionStore {
  private readonly expiries = new Map<string, number>();

  constructor(readonly ttlMs: number) {}

  create(nowMs: number): string {
    this.prune(nowMs);
    while (this.expiries.size >= MAX_SESSIONS) {
      const oldest = this.expiries.keys().next().value;
      if (oldest === undefined) break;
      this.expiries.delete(oldest);
    }
    const token = randomBytes(32).toString("base64url");
    this.expiries.set(token, nowMs + this.ttlMs);
    return token;
  }

  /** True for a live session; sliding expiry: each use extends it. */
  touch(token: string | undefined, nowMs: number): boolean {
    if (token === undefined) return false;
    const expiry = this.expiries.get(token);
    if (expiry === undefined) return false;
    if (nowMs >= expiry) {
      this.expiries.delete(token);
      return false;
    }
    this.expiries.set(token, nowMs + this.ttlMs);
    return true;
  }

  /** True for a live session, without extending it (a live stream is not a technician's action). */
  isLive(token: string, nowMs: number): boolean {
    const expiry = this.expiries.get(token);
    return expiry !== undefined && nowMs < expiry;
  }

  delete(token: string | undefined): void {
    if (token !== undefined) this.expiries.delete(token);
  }

  private prune(nowMs: number): void {
    for (const [token, expiry] of this.expiries) if (nowMs >= expiry) this.expiries.delete(token);
  }
}
