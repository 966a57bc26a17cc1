/**
 * Per-client counters, rolling windows and blocks (Postfix calls this daemon "anvil").
 * Keyed by the client key (an IPv4 address, or an IPv6 network of limits.ipv6Prefix).
 * Time is injected; every table ages out (sweep), so memory is bounded by the clients seen in the last hour or so, and
 * never more than MAX_CLIENTS of them: a sender rotating through IPv6 networks (or a large botnet) would otherwise grow
 * the table, and every question that walks it, without limit.
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
  /** when the block began (a lowered blockMinutes ends it from there) */
  since: number;
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
/**
 * The most clients the table holds (about 85 MB at worst, each with its last ten rejections). Past it, the least
 * recently seen client without an open connection is forgotten: its counters and any block start afresh.
 */
export const MAX_CLIENTS = 100_000;

export class Anvil {
  /**
   * In the order the clients were last seen, oldest first (a client seen again moves to the end), so the newest are at
   * the end for clients.list and the one to forget at the cap is at the front.
   */
  private readonly table = new Map<string, Entry>();
  private readonly now: () => number;
  /** authFailures.windowMinutes in ms, read at each question so config changes apply at once. */
  private authWindowMs: () => number;
  private readonly maxClients: number;
  /** Clients forgotten at the cap since the start (the relay says so in its log). */
  evictions = 0;
  private cursor: IterableIterator<[string, Entry]> | null = null;

  constructor(opts: { now?: () => number; authWindowMs?: () => number; maxClients?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.authWindowMs = opts.authWindowMs ?? (() => 10 * 60_000);
    this.maxClients = opts.maxClients ?? MAX_CLIENTS;
  }

  private entry(key: string): Entry {
    let e = this.table.get(key);
    if (!e) {
      if (this.table.size >= this.maxClients) this.evict();
      e = { connections: 0, messages: new Window(), unknown: new Window(), authFailures: new Window(), block: null, lastSeen: this.now(), rejections: [] };
      this.table.set(key, e);
    }
    return e;
  }

  /** Marks the client seen now and moves it to the end of the table, which keeps the table in last-seen order. */
  private seen(key: string, e: Entry): void {
    e.lastSeen = this.now();
    this.table.delete(key);
    this.table.set(key, e);
  }

  /**
   * Forgets the least recently seen client that has no open connection (a connected one's count is what the
   * concurrent-connection limit reads; there are at most smtp.maxConnections of them).
   */
  private evict(): void {
    // A walk that goes on from where the last one stopped: a new walk from the front would step over every entry
    // deleted there since the Map last compacted (30-40 µs a client at the cap, measured, against 3 µs). A Map
    // iterator stays valid while entries are deleted and added; clients seen again went to the end, where it meets
    // them in their new turn. One full pass without a candidate (every client connected) gives up: the table grows.
    for (let restarts = 0; restarts < 2; ) {
      const step = (this.cursor ??= this.table.entries()).next();
      if (step.done) {
        this.cursor = null;
        restarts++;
        continue;
      }
      const [key, e] = step.value;
      if (e.connections > 0 || this.table.get(key) !== e) continue;
      this.table.delete(key);
      // one with nothing left in its windows would have gone at the next sweep anyway: nothing was lost
      if (!this.spent(e, this.now())) this.evictions++;
      return;
    }
  }

  /** Ages the client's windows; true when nothing is left of it (no connection, count, block or recent rejection). */
  private spent(e: Entry, now: number): boolean {
    e.messages.prune(now, HOUR);
    e.unknown.prune(now, HOUR);
    e.authFailures.prune(now, Math.max(this.authWindowMs(), HOUR));
    if (e.block && e.block.until <= now) e.block = null;
    if (e.rejections.length && e.rejections[e.rejections.length - 1]!.at <= now - HOUR) e.rejections = [];
    return e.connections === 0 && !e.block && e.messages.empty && e.unknown.empty && e.authFailures.empty && e.rejections.length === 0;
  }

  // --- connections -------------------------------------------------------------------------
  connectionOpened(key: string): number {
    const e = this.entry(key);
    this.seen(key, e);
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
    this.seen(key, e);
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

  /**
   * A rule's blockMinutes lowered to `toMs`: its blocks under way end at most that long after they began. An admin who
   * shortens the block expects the clients blocked now to get out sooner, not only those blocked from now on (a raise
   * lengthens no block under way). Returns how many blocks were shortened, and how many of them are over at once.
   */
  shortenBlocks(rule: Rule, toMs: number): { shortened: number; ended: number } {
    const now = this.now();
    let shortened = 0;
    let ended = 0;
    for (const e of this.table.values()) {
      const b = e.block;
      if (!b || b.rule !== rule || b.until <= now) continue;
      const until = b.since + toMs;
      if (until < b.until) {
        e.block = { ...b, until };
        shortened++;
        if (until <= now) ended++;
      }
    }
    return { shortened, ended };
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

  /** Every client key, without building any state (cheap at MAX_CLIENTS). */
  keys(): IterableIterator<string> {
    return this.table.keys();
  }

  /**
   * The most recently seen clients first, up to `limit` of those `match` accepts, and how many it accepts in all. Only
   * the returned ones get a full state, so a full table costs a walk over its keys, not a sort of 100,000 states.
   */
  recent(limit: number, match: (key: string, blocked: boolean) => boolean = () => true): { clients: ClientState[]; total: number } {
    const keys = [...this.table.keys()];
    const clients: ClientState[] = [];
    let total = 0;
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      if (!match(key, this.blocked(key) !== null)) continue;
      total++;
      if (clients.length < limit) clients.push(this.state(key)!);
    }
    return { clients, total };
  }

  /** The `n` clients with the most messages in the last hour (ties: more connections), idle ones left out. */
  busiest(n: number): { key: string; messagesLastHour: number; connections: number }[] {
    const now = this.now();
    const top: { key: string; messagesLastHour: number; connections: number }[] = [];
    for (const [key, e] of this.table) {
      const messagesLastHour = e.messages.count(now, HOUR);
      if (messagesLastHour === 0 && e.connections === 0) continue;
      const last = top[top.length - 1];
      if (top.length >= n && last && (messagesLastHour < last.messagesLastHour || (messagesLastHour === last.messagesLastHour && e.connections <= last.connections))) continue;
      top.push({ key, messagesLastHour, connections: e.connections });
      top.sort((x, y) => y.messagesLastHour - x.messagesLastHour || y.connections - x.connections);
      if (top.length > n) top.pop();
    }
    return top;
  }

  get size(): number {
    return this.table.size;
  }

  /** Drop what has left every window; forget clients with nothing left. Call every minute or so. */
  sweep(): void {
    const now = this.now();
    for (const [key, e] of this.table) if (this.spent(e, now)) this.table.delete(key);
  }
}
