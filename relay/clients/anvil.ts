/**
 * Per-client counters, rolling windows and blocks (Postfix calls this daemon "anvil").
 * Keyed by the client key (an IPv4 address, or an IPv6 network of limits.ipv6Prefix).
 * Time is injected; every table ages out (sweep), so memory is bounded by the clients seen in the last hour or so.
 */
import type { Rule } from '../../shared/events.ts';

const HOUR = 3_600_000;
/** The most timestamps one window keeps per client; past it the count reads as "at least" this many. */
export const WINDOW_CAP = 100_000;

/** Timestamps in ascending order, dropped from the front as they leave the window. */
class Window {
  private times: number[] = [];
  private start = 0;

  add(t: number): void {
    if (this.times.length - this.start >= WINDOW_CAP) this.start++;
    this.times.push(t);
  }

  /** Entries with time > now - spanMs: a binary search, not a walk over up to WINDOW_CAP stale entries per question. */
  count(now: number, spanMs: number): number {
    const cutoff = now - spanMs;
    let lo = this.start;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.times[mid]! <= cutoff) lo = mid + 1;
      else hi = mid;
    }
    return this.times.length - lo;
  }

  /** Forget entries older than spanMs (amortised compaction). */
  prune(now: number, spanMs: number): void {
    const cutoff = now - spanMs;
    while (this.start < this.times.length && this.times[this.start]! <= cutoff) this.start++;
    if (this.start > 64 && this.start * 2 > this.times.length) {
      this.times = this.times.slice(this.start);
      this.start = 0;
    }
  }

  clear(): void {
    this.times = [];
    this.start = 0;
  }

  get empty(): boolean {
    return this.start >= this.times.length;
  }
}

export interface Block {
  rule: Rule;
  until: number;
  reason: string;
}

export interface Rejection {
  at: number;
  rule: Rule;
  code: number;
  text: string;
  enforced: boolean;
}

export interface ClientState {
  key: string;
  connections: number;
  messagesLastHour: number;
  unknownRecipientsLastHour: number;
  authFailuresInWindow: number;
  blocked: Block | null;
  lastSeen: number;
  recentRejections: Rejection[];
}

interface Entry {
  connections: number;
  messages: Window;
  unknown: Window;
  authFailures: Window;
  block: Block | null;
  lastSeen: number;
  rejections: Rejection[];
}

const RECENT_REJECTIONS = 10;

export class Anvil {
  private readonly table = new Map<string, Entry>();
  private readonly now: () => number;
  /** authFailures.windowMinutes in ms, read at each question so config changes apply at once. */
  private authWindowMs: () => number;

  constructor(opts: { now?: () => number; authWindowMs?: () => number } = {}) {
    this.now = opts.now ?? Date.now;
    this.authWindowMs = opts.authWindowMs ?? (() => 10 * 60_000);
  }

  private entry(key: string): Entry {
    let e = this.table.get(key);
    if (!e) {
      e = { connections: 0, messages: new Window(), unknown: new Window(), authFailures: new Window(), block: null, lastSeen: 0, rejections: [] };
      this.table.set(key, e);
    }
    return e;
  }

  // --- connections -------------------------------------------------------------------------
  connectionOpened(key: string): number {
    const e = this.entry(key);
    e.lastSeen = this.now();
    return ++e.connections;
  }

  connectionClosed(key: string): void {
    const e = this.table.get(key);
    if (e && e.connections > 0) e.connections--;
  }

  connections(key: string): number {
    return this.table.get(key)?.connections ?? 0;
  }

  // --- messages ----------------------------------------------------------------------------
  messageAccepted(key: string): void {
    const e = this.entry(key);
    e.lastSeen = this.now();
    e.messages.add(e.lastSeen);
  }

  messagesLastHour(key: string): number {
    return this.table.get(key)?.messages.count(this.now(), HOUR) ?? 0;
  }

  // --- unknown recipients ------------------------------------------------------------------
  /** Records one unknown recipient and returns the count in the last hour (this one included). */
  unknownRecipient(key: string): number {
    const e = this.entry(key);
    const now = this.now();
    e.unknown.add(now);
    return e.unknown.count(now, HOUR);
  }

  unknownRecipientsLastHour(key: string): number {
    return this.table.get(key)?.unknown.count(this.now(), HOUR) ?? 0;
  }

  // --- AUTH failures -----------------------------------------------------------------------
  authFailure(key: string): number {
    const e = this.entry(key);
    const now = this.now();
    e.authFailures.add(now);
    return e.authFailures.count(now, this.authWindowMs());
  }

  // --- blocks ------------------------------------------------------------------------------
  block(key: string, block: Block): void {
    this.entry(key).block = block;
  }

  /** The active block for this client, or null (an expired block is forgotten). */
  blocked(key: string): Block | null {
    const e = this.table.get(key);
    if (!e?.block) return null;
    if (e.block.until <= this.now()) {
      e.block = null;
      return null;
    }
    return e.block;
  }

  /** Clear the block and the counters that lead to blocks (unknown recipients, AUTH failures). */
  unblock(key: string): boolean {
    const e = this.table.get(key);
    if (!e) return false;
    const had = e.block !== null && e.block.until > this.now();
    e.block = null;
    e.unknown.clear();
    e.authFailures.clear();
    return had;
  }

  /** The one-click "trust": clear everything that could refuse this client. */
  forgive(key: string): void {
    const e = this.table.get(key);
    if (!e) return;
    this.unblock(key);
    e.messages.clear();
  }

  recordRejection(key: string, r: Rejection): void {
    const e = this.entry(key);
    e.rejections.push(r);
    if (e.rejections.length > RECENT_REJECTIONS) e.rejections.shift();
  }

  // --- reporting and ageing ----------------------------------------------------------------
  state(key: string): ClientState | null {
    const e = this.table.get(key);
    if (!e) return null;
    const now = this.now();
    return {
      key,
      connections: e.connections,
      messagesLastHour: e.messages.count(now, HOUR),
      unknownRecipientsLastHour: e.unknown.count(now, HOUR),
      authFailuresInWindow: e.authFailures.count(now, this.authWindowMs()),
      blocked: this.blocked(key),
      lastSeen: e.lastSeen,
      recentRejections: [...e.rejections],
    };
  }

  list(): ClientState[] {
    const out: ClientState[] = [];
    for (const key of this.table.keys()) out.push(this.state(key)!);
    return out;
  }

  get size(): number {
    return this.table.size;
  }

  /** Drop what has left every window; forget clients with nothing left. Call every minute or so. */
  sweep(): void {
    const now = this.now();
    const authSpan = Math.max(this.authWindowMs(), HOUR);
    for (const [key, e] of this.table) {
      e.messages.prune(now, HOUR);
      e.unknown.prune(now, HOUR);
      e.authFailures.prune(now, authSpan);
      if (e.block && e.block.until <= now) e.block = null;
      if (e.rejections.length && e.rejections[e.rejections.length - 1]!.at <= now - HOUR) e.rejections = [];
      if (e.connections === 0 && !e.block && e.messages.empty && e.unknown.empty && e.authFailures.empty && e.rejections.length === 0) {
        this.table.delete(key);
      }
    }
  }
}
