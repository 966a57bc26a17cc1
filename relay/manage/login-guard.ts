/**
 * Login brute-force guard for the management port: LOGIN_MAX_FAILURES failed logins from one IP within
 * LOGIN_FAILURE_WINDOW_MS lock that IP out for LOGIN_LOCKOUT_MS. Bounded: entries age out, and past maxEntries the
 * oldest are dropped (an attacker spraying addresses cannot grow it without bound).
 */
import { LOGIN_FAILURE_WINDOW_MS, LOGIN_LOCKOUT_MS, LOGIN_MAX_FAILURES } from '../../shared/protocol.ts';

interface Entry {
  failures: number[];
  lockedUntil: number;
}

export interface LoginGuardOptions {
  maxFailures?: number;
  windowMs?: number;
  lockoutMs?: number;
  maxEntries?: number;
  now?: () => number;
}

export class LoginGuard {
  private readonly table = new Map<string, Entry>();
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly lockoutMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: LoginGuardOptions = {}) {
    this.maxFailures = opts.maxFailures ?? LOGIN_MAX_FAILURES;
    this.windowMs = opts.windowMs ?? LOGIN_FAILURE_WINDOW_MS;
    this.lockoutMs = opts.lockoutMs ?? LOGIN_LOCKOUT_MS;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** ms left in this IP's lockout, 0 when it may try. */
  lockedFor(ip: string): number {
    const e = this.table.get(ip);
    if (!e) return 0;
    const left = e.lockedUntil - this.now();
    return left > 0 ? left : 0;
  }

  /** Record a failure; returns the lockout in ms when this failure locked the IP, else 0. */
  fail(ip: string): number {
    const now = this.now();
    let e = this.table.get(ip);
    if (!e) {
      if (this.table.size >= this.maxEntries) this.evict(now);
      e = { failures: [], lockedUntil: 0 };
      this.table.set(ip, e);
    }
    e.failures = e.failures.filter((t) => t > now - this.windowMs);
    e.failures.push(now);
    if (e.failures.length >= this.maxFailures) {
      e.lockedUntil = now + this.lockoutMs;
      e.failures = [];
      return this.lockoutMs;
    }
    return 0;
  }

  private evict(now: number): void {
    for (const [ip, e] of this.table) {
      if (e.lockedUntil <= now && e.failures.every((t) => t <= now - this.windowMs)) this.table.delete(ip);
    }
    while (this.table.size >= this.maxEntries) {
      const first = this.table.keys().next().value;
      if (first === undefined) break;
      this.table.delete(first);
    }
  }
}
