/**
 * One management connection: its login state, request rate limit, subscriptions (each a bounded buffer of event
 * JSON), and the ways it ends. Sending never blocks: the socket's bufferedAmount says whether the console keeps up.
 */
import type { WebSocket } from 'ws';
import type { RelayEvent } from '../../shared/events.ts';
import { CloseCode, type NotificationName, type NotificationParams, type Role } from '../../shared/protocol.ts';
import { eventJson } from '../store/history.ts';
import type { CompiledFilter } from './filter.ts';

export class Subscription {
  private buffer: string[] = [];
  dropped = 0;
  /** events dropped over the subscription's life */
  droppedTotal = 0;
  /**
   * Sends nothing yet: events.subscribe registers its subscription before it reads the backlog (so no event emitted
   * meanwhile is missed) and releases it once its answer, with the backlog, has been sent, so no events.batch comes
   * before the backlog it follows. Events are buffered meanwhile (bounded as always).
   */
  held = false;

  constructor(
    readonly id: string,
    readonly filter: CompiledFilter,
    private readonly max: number,
  ) {}

  /** The bus fan-out: cheap, bounded. */
  offer(e: RelayEvent): void {
    if (!this.filter.test(e)) return;
    if (this.buffer.length >= this.max) {
      this.dropped++;
      this.droppedTotal++;
      return;
    }
    this.buffer.push(eventJson(e));
  }

  get pending(): number {
    return this.buffer.length;
  }

  /**
   * The next events.batch frame (at most maxEvents events, and events of at most maxChars characters in all: the one
   * that crosses it is the last), or null when there is nothing to say. The rest wait for the next batch.
   */
  takeBatch(maxEvents: number, maxChars = Infinity): string | null {
    if (this.held || (this.buffer.length === 0 && this.dropped === 0)) return null;
    let n = Math.min(this.buffer.length, maxEvents);
    if (maxChars !== Infinity) {
      let chars = 0;
      for (let i = 0; i < n; i++) {
        chars += this.buffer[i]!.length + 1;
        if (chars >= maxChars) {
          n = i + 1;
          break;
        }
      }
    }
    const events = n === this.buffer.length ? this.buffer : this.buffer.slice(0, n);
    this.buffer = n === this.buffer.length ? [] : this.buffer.slice(n);
    const dropped = this.dropped > 0 ? `,"dropped":${this.dropped}` : '';
    this.dropped = 0;
    return `{"jsonrpc":"2.0","method":"events.batch","params":{"subscriptionId":${JSON.stringify(this.id)},"events":[${events.join(',')}]${dropped}}}`;
  }
}

/** Token bucket: `rate` requests a second, bursts of `burst`. */
export class RateLimit {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number,
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** ms until one request is allowed again */
  retryAfterMs(): number {
    return Math.max(0, Math.ceil(((1 - this.tokens) / this.rate) * 1000));
  }
}

export class Session {
  auth: { name: string; role: Role } | null = null;
  readonly subscriptions = new Map<string, Subscription>();
  /** requests refused by the rate limit since limitedSince (a 10 s window) */
  limited = 0;
  limitedSince = 0;
  /** since when the socket's send buffer has stayed over the limit (null: it keeps up) */
  stalledSince: number | null = null;
  loginTimer: NodeJS.Timeout | null = null;
  /**
   * Frames held while the console does not read its replies (more than maxBufferedBytes unsent); the socket is paused
   * meanwhile, and waitTimer checks for it to have read. `inFlight`: its frames being answered now.
   */
  waiting: import('ws').RawData[] = [];
  waitTimer: NodeJS.Timeout | null = null;
  inFlight = 0;
  closed = false;
  /**
   * Close right after the current reply (or batch of replies) is sent, and run nothing after the request that set it:
   * the session revoked its own token (tokens.revoke), or its auth.login failed into a lockout or came from a
   * locked-out address (why: 'locked-out', with retryAfterMs).
   */
  closeAfterReply: { code: number; why: NotificationParams<'session.closed'>['reason']; message: string; retryAfterMs?: number } | null = null;
  private nextSub = 1;

  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly ip: string,
    readonly rate: RateLimit,
  ) {}

  newSubscriptionId(): string {
    return `${this.id}.${this.nextSub++}`;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  sendText(text: string): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(text);
  }

  send(message: unknown): void {
    this.sendText(JSON.stringify(message));
  }

  notify<N extends NotificationName>(method: N, params: NotificationParams<N>): void {
    this.send({ jsonrpc: '2.0', method, params });
  }

  /**
   * End the session: stop its streams at once, tell the console why, close. A console that does not read (its
   * buffer is full) never sees the close frame, so the socket is destroyed after a grace period.
   */
  close(code: number, reason: NotificationParams<'session.closed'>['reason'], message: string, retryAfterMs?: number): void {
    if (this.closed) return;
    this.subscriptions.clear();
    if (this.loginTimer) clearTimeout(this.loginTimer);
    if (this.waitTimer) clearInterval(this.waitTimer);
    this.waitTimer = null;
    this.waiting = [];
    if (code !== CloseCode.MessageTooBig && code !== CloseCode.UnsupportedData) {
      this.notify('session.closed', retryAfterMs === undefined ? { reason, message } : { reason, message, retryAfterMs: Math.max(0, Math.ceil(retryAfterMs)) });
    }
    this.closed = true;
    try {
      this.ws.close(code, message.slice(0, 120));
    } catch {
      // already closing
    }
    const t = setTimeout(() => this.ws.terminate(), code === CloseCode.Stalled ? 0 : 1000);
    t.unref();
  }
}
