/**
 * The console's connection to one relay: pin, log in, subscribe, and keep it that way. On a drop it
 * reconnects with jittered exponential backoff and resyncs (events since the last id it saw; config
 * consumers are told to refetch) without the user doing anything. A stalled relay (no pong) is dropped
 * and retried. A refused token, a changed certificate or an address where no relay answers (another service, such as
 * the relay's SMTP port) stops and says why: those need a person. Saving new settings for the relay it is on (or
 * trying) takes effect at once: it connects again with them.
 *
 * The messages carry no countdown: a number in a sentence goes stale the moment it is shown. `retryAt` and `attempt`
 * say when the next attempt is; the views count down from them.
 */
import type WebSocket from 'ws';
import type { CertificateInfo, ConnectionState, EventBatch, EventGap, ProfileSaveConnection } from '../../shared/console-api.ts';
import type { RelayEvent } from '../../shared/events.ts';
import {
  CloseCode,
  ErrorCode,
  RateLimitedData,
  type MethodName,
  type NotificationParams,
  type Params,
  type Result,
  RpcError,
} from '../../shared/protocol.ts';
import type { KnownHosts } from './known-hosts.ts';
import { NotTlsError, PinError, openPinned } from './pinned-socket.ts';
import type { Timers } from './ports.ts';
import { realTimers } from './ports.ts';
import type { Profiles } from './profiles.ts';
import { RpcClient, TransportError } from './rpc-client.ts';

/** acceptFingerprint with another fingerprint than the pinned one: refused, nothing dialled, nothing sent */
export class PinReplaceRefused extends Error {
  readonly code = 'pinned';
  constructor(
    readonly pinned: string,
    readonly offered: string,
  ) {
    super(
      `Refused: this server's certificate is pinned (SHA-256 ${pinned}), and accepting another one (${offered}) cannot replace a pin. Nothing was sent. If the certificate was replaced on purpose, forget the old fingerprint first, then connect: you will be asked to accept the new one.`,
    );
    this.name = 'PinReplaceRefused';
  }
}

export interface ConnectionEvents {
  state(s: ConnectionState): void;
  events(b: EventBatch): void;
  stats(s: NotificationParams<'stats.tick'>): void;
  config(c: NotificationParams<'config.changed'>): void;
}

export interface ConnectionOptions {
  profiles: Profiles;
  knownHosts: KnownHosts;
  timers?: Timers;
  /** backoff: first delay and cap, ms */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** a relay that does not answer a ping within this time is considered stalled */
  heartbeatMs?: number;
  callTimeoutMs?: number;
  clientName?: string;
}

/**
 * How long to stay away after the relay refused us when it does not say for how long (a rate-limited auth.login and
 * a session.closed 'locked-out' carry retryAfterMs; a 'flood' refusal, or a relay older than that field, do not).
 */
export const LOCKED_OUT_RETRY_MS = 60_000;

/** The relay's "; try again in 297 s": the views show a live countdown from retryAt instead of this frozen number. */
export function withoutCountdown(words: string): string {
  return words.replace(/[;,]?\s*try again in \d+ s\b/i, '').trim();
}

/** What a profile save changed, for the connection that may be using that profile. */
export interface ProfileChange {
  /** its host or port */
  address: boolean;
  /** a token was pasted (the same one again too: after a refusal, the user may have fixed the token on the relay) */
  tokenGiven: boolean;
  /** the stored token differs from the one before */
  tokenChanged: boolean;
}

/**
 * The stretches of the stream a backlog the relay cut leaves out (events.subscribe's `truncated`). The relay keeps the
 * newest `backlogMax` (10,000) matching events since `sinceId`; the core subscribes unfiltered, and within one history
 * ids follow one another, so every jump in the ids, from the last event the console had (`sinceId`, at `sinceAt`) on,
 * is events not sent: the oldest ones, before the backlog, and with an older relay any further hole (it read its
 * history forward from `sinceId` and then added its memory, leaving a hole between them when the history part was
 * long). Cut, yet no jump (ids that do not follow one another): the gap is taken to be before the first event, so the
 * views still say something was left out. `backlogMax`, when the relay told it, goes with each gap (the views' words).
 */
export function backlogGaps(sinceId: number, sinceAt: number | null, backlog: readonly RelayEvent[], backlogMax?: number): EventGap[] {
  const gaps: EventGap[] = [];
  const told = backlogMax === undefined ? {} : { backlogMax };
  let afterId = sinceId;
  let from = sinceAt;
  for (const e of backlog) {
    if (e.id > afterId + 1) gaps.push({ afterId, from, beforeId: e.id, to: e.at, ...told });
    afterId = e.id;
    from = e.at;
  }
  const first = backlog[0];
  if (gaps.length === 0 && first) gaps.push({ afterId: sinceId, from: sinceAt, beforeId: first.id, to: first.at, ...told });
  return gaps;
}

/** A time of day on the console's clock, for the words of the status bar: "19:05:00". */
function clockTime(t: number): string {
  const d = new Date(t);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
}

const idle = (): ConnectionState => ({
  status: 'disconnected',
  profileId: null,
  profileName: null,
  message: 'Not connected. Pick a server and connect.',
  role: null,
  tokenName: null,
  certificate: null,
  pinnedFingerprint: null,
  attempt: 0,
  retryAt: null,
  relay: null,
  since: Date.now(),
});

export class RelayConnection {
  private st: ConnectionState = idle();
  private rpc: RpcClient | null = null;
  private ws: WebSocket | null = null;
  private retryTimer: unknown = null;
  /** the next heartbeat tick (a timer of the injected Timers, re-armed by each tick) */
  private heartbeat: unknown = null;
  /** bumps on every connect/disconnect: a late callback of an older attempt is ignored */
  private generation = 0;
  private lastEventId = 0;
  /** the time of the event lastEventId names, when the console had it (null: none yet in this stream) */
  private lastEventAt: number | null = null;
  /** the relay history (auth.login's historyId) the events up to lastEventId came from; null before the first login */
  private historyId: string | null = null;
  /** the next events batch emitted starts a new stream (another history or another relay): it carries reset: true */
  private resetPending = false;
  /** the profile whose events were emitted last (what the consumers hold); kept across a disconnect */
  private streamProfileId: string | null = null;
  /** a login succeeded before (on any profile): the consumers hold data fetched from a relay */
  private loggedInBefore = false;
  private subscriptionId: string | null = null;
  /**
   * the pending retry waits out a lockout of this address by the relay (its words, without their countdown): coming
   * back before it ends meets the refusal again, so a new token waits for it too (a new address does not)
   */
  private lockout: string | null = null;
  /**
   * the console reached this relay (logged in) since connect(): a later failure to connect is the relay stopped or
   * gone, not a wrong address, and must not be worded as one ("is manage.listen that address?")
   */
  private reached = false;
  /** how and when the connection to the relay it had reached ended: said until it is back (what the admin needs first) */
  private lost: string | null = null;
  /** when that connection ended (for the live view's mark of the break), null while connected */
  private lostAt: number | null = null;
  /** the relay's start time at the last login (auth.login's relay.startedAt): another one at a reconnect is a restart */
  private relayStartedAt: number | null = null;
  private readonly listeners: { [K in keyof ConnectionEvents]: Set<ConnectionEvents[K]> } = {
    state: new Set(),
    events: new Set(),
    stats: new Set(),
    config: new Set(),
  };
  private readonly timers: Timers;

  constructor(private readonly opts: ConnectionOptions) {
    this.timers = opts.timers ?? realTimers;
  }

  on<K extends keyof ConnectionEvents>(kind: K, fn: ConnectionEvents[K]): () => void {
    this.listeners[kind].add(fn);
    return () => this.listeners[kind].delete(fn);
  }

  private emit<K extends keyof ConnectionEvents>(kind: K, arg: Parameters<ConnectionEvents[K]>[0]): void {
    for (const l of this.listeners[kind]) {
      try {
        (l as (a: typeof arg) => void)(arg);
      } catch (err) {
        console.error(`console listener failed: ${(err as Error).message}`);
      }
    }
  }

  get state(): ConnectionState {
    return this.st;
  }

  private set(patch: Partial<ConnectionState>): void {
    this.st = { ...this.st, ...patch, since: patch.status && patch.status !== this.st.status ? this.timers.now() : this.st.since };
    this.emit('state', this.st);
  }

  /** Connect to a profile (dropping any current connection). Resolves with the state reached by the first attempt. */
  async connect(profileId: string, accept: string | null = null): Promise<ConnectionState> {
    const profile = this.opts.profiles.get(profileId);
    if (!profile) throw new Error(`there is no server profile ${profileId}`);
    const otherRelay = this.streamProfileId !== profileId;
    if (otherRelay) {
      this.lastEventId = 0;
      this.lastEventAt = null;
      this.historyId = null;
      this.resetPending = this.streamProfileId !== null;
      this.streamProfileId = profileId;
    }
    // the same relay again (after a disconnect too): go on from the last event taken in; login tells a fresh history
    this.teardown();
    // another relay: its ids are another stream's. The consumers drop what they hold now (an empty batch marked
    // reset), not at its first batch: a relay that asks for its fingerprint, or cannot be reached, may send none for
    // long, and the old relay's events must not be shown under the new one's name meanwhile
    if (otherRelay && this.resetPending) this.emitEvents({ events: [] });
    // a new life: until it logs in, a refused connection may be a wrong address
    this.reached = false;
    this.lost = null;
    this.lostAt = null;
    const gen = ++this.generation;
    this.set({ ...idle(), status: 'connecting', profileId, profileName: profile.name, message: `Connecting to ${profile.host}:${profile.port}…`, attempt: 1 });
    await this.attempt(gen, accept);
    return this.st;
  }

  /**
   * The answer to the first-contact prompt. It never replaces a pin: while a fingerprint is pinned for the profile's
   * address, accepting another one is refused here, before anything is dialled (and openPinned checks the pin over
   * any accept). The only way to a new certificate is connection.forgetFingerprint, then accepting on first contact.
   */
  async acceptFingerprint(profileId: string, fingerprint256: string): Promise<ConnectionState> {
    const profile = this.opts.profiles.get(profileId);
    if (!profile) throw new Error(`there is no server profile ${profileId}`);
    const pinned = this.opts.knownHosts.get(profile.host, profile.port)?.fingerprint256 ?? null;
    if (pinned !== null && pinned.toUpperCase() !== fingerprint256.toUpperCase()) throw new PinReplaceRefused(pinned, fingerprint256);
    return this.connect(profileId, fingerprint256);
  }

  async disconnect(): Promise<void> {
    this.generation++;
    this.teardown();
    this.set({ ...idle() });
  }

  private teardown(): void {
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.lockout = null;
    this.stopHeartbeat();
    this.rpc?.close();
    this.rpc = null;
    this.ws = null;
    this.subscriptionId = null;
  }

  private async attempt(gen: number, accept: string | null): Promise<void> {
    const profileId = this.st.profileId!;
    const profile = this.opts.profiles.get(profileId);
    if (!profile) return this.stop(gen, 'disconnected', 'The server profile was removed.');
    if (!profile.token) return this.stop(gen, 'auth-failed', 'This server has no stored token. Edit the server and paste its token.');
    const pinned = this.opts.knownHosts.get(profile.host, profile.port)?.fingerprint256 ?? null;
    let ws: WebSocket;
    let certificate: CertificateInfo;
    try {
      ({ ws, certificate } = await openPinned({ host: profile.host, port: profile.port, pinned, accept }));
    } catch (err) {
      if (gen !== this.generation) return;
      if (err instanceof PinError) {
        this.set({
          status: err.kind === 'unknown' ? 'fingerprint-unknown' : 'fingerprint-mismatch',
          message: err.message,
          certificate: err.certificate,
          pinnedFingerprint: err.pinned,
          retryAt: null,
        });
        return;
      }
      if (err instanceof NotTlsError) {
        // a wrong address, not an outage: retrying forever would only hide the mistake behind a countdown
        return this.stop(gen, 'disconnected', `${err.message} The console stopped trying: correct this server's port (saving it connects again).`);
      }
      // reached a moment ago: the relay stopped (or the network dropped); say that and when, with what this attempt
      // met, not a configuration hint (the address worked)
      if (this.lost !== null) return this.scheduleRetry(gen, `${this.lost} Not back yet: ${(err as Error & { brief?: string }).brief ?? (err as Error).message}.`);
      return this.scheduleRetry(gen, `Cannot reach the relay: ${(err as Error).message}`);
    }
    if (gen !== this.generation) {
      ws.terminate();
      return;
    }
    if (accept && !pinned) this.opts.knownHosts.accept(profile.host, profile.port, certificate.fingerprint256, certificate.subject);
    this.ws = ws;
    const rpc = new RpcClient(ws, this.opts.callTimeoutMs, this.timers);
    this.rpc = rpc;
    this.set({ status: 'authenticating', message: 'Logging in…', certificate, pinnedFingerprint: certificate.fingerprint256 });
    let closeReason: NotificationParams<'session.closed'> | null = null;
    rpc.on('session.closed', (p) => (closeReason = p));
    ws.on('close', (code: number, why: Buffer) => {
      if (gen !== this.generation || this.rpc !== rpc) return;
      this.stopHeartbeat();
      this.rpc = null;
      const reason = closeReason as NotificationParams<'session.closed'> | null;
      // the close frame's code and text say it too, should the session.closed notice have been missed
      const said = reason?.message ?? (why.toString() || null);
      const words = said === null ? null : withoutCountdown(said);
      // a revoked token needs a person: no reconnect loop
      if (reason?.reason === 'revoked' || code === CloseCode.TokenRevoked) {
        return this.stop(gen, 'auth-failed', `The relay closed this session: ${words ?? 'its token was revoked'}. Ask for a new token.`);
      }
      // locked out for failed logins (or refused for flooding): coming back within the backoff only meets the refusal again
      if (reason?.reason === 'locked-out' || code === CloseCode.RateLimited) {
        // as long as the relay says the lockout lasts (an older relay, or a flood refusal, says nothing: a minute)
        const wait = reason?.retryAfterMs !== undefined ? Math.max(1000, reason.retryAfterMs) : LOCKED_OUT_RETRY_MS;
        return this.scheduleRetry(gen, `The relay refused this address: ${words ?? 'rate limited'}.`, wait, true);
      }
      // what ended it and when: kept until the relay is back (the next attempts add what they meet)
      const at = clockTime(this.timers.now());
      const lost =
        reason?.reason === 'shutdown' ? `The relay stopped at ${at} (it said: ${words ?? 'shutting down'}).`
          : words ? `The relay closed the connection at ${at}: ${words}.`
            : `The connection to the relay was lost at ${at}.`;
      if (this.reached) {
        this.lost = lost;
        this.lostAt ??= this.timers.now();
      }
      this.scheduleRetry(gen, lost);
    });
    // a socket torn down (a switch to another relay, a reconnect) delivers what was on its way until its close
    // completes: only the current one speaks for the relay. Subscription ids do not tell: every relay numbers them
    // alike, so the old relay's late batch would pass for the new one's.
    const current = () => gen === this.generation && this.rpc === rpc;
    rpc.on('events.batch', (b) => {
      if (!current() || b.subscriptionId !== this.subscriptionId) return;
      const last = b.events[b.events.length - 1];
      if (last) {
        this.lastEventId = last.id;
        this.lastEventAt = last.at;
      }
      this.emitEvents({ events: b.events, dropped: b.dropped });
    });
    rpc.on('stats.tick', (s) => current() && this.emit('stats', s));
    rpc.on('config.changed', (c) => current() && this.emit('config', c));
    try {
      const login = await rpc.call('auth.login', { token: profile.token, client: this.opts.clientName ?? 'Relay Warden console' });
      if (gen !== this.generation) return;
      // the consumers hold what they fetched before this login (an earlier login, on this relay or another, or a
      // retry): it may be stale, or another relay's
      const consumersHoldData = this.st.attempt > 1 || this.loggedInBefore;
      this.loggedInBefore = true;
      // the relay restarted with a fresh history: its ids are another stream's, even when they have already passed our
      // last one. Start over from 0 (rather than miss the new history's first events) and tell the consumers to drop
      // what they hold. Ids below our last one say the same (kept as a fallback).
      const otherHistory = this.historyId !== null && login.historyId !== this.historyId;
      if (otherHistory || login.lastEventId < this.lastEventId) {
        this.lastEventId = 0;
        this.lastEventAt = null;
        this.resetPending = true;
      }
      this.historyId = login.historyId;
      // back on the stream the views hold after a break: the live view marks it, and says when the relay restarted
      const away =
        this.lostAt !== null && !this.resetPending
          ? { from: this.lostAt, to: this.timers.now(), restartedAt: this.relayStartedAt !== null && login.relay.startedAt !== this.relayStartedAt ? login.relay.startedAt : null }
          : undefined;
      this.relayStartedAt = login.relay.startedAt;
      const sinceId = this.lastEventId;
      const sub = await rpc.call('events.subscribe', { sinceId });
      if (gen !== this.generation) return;
      this.subscriptionId = sub.subscriptionId;
      if (sub.backlog.length) {
        const last = sub.backlog[sub.backlog.length - 1]!;
        // more happened since our last id than the relay sends at once: say what the backlog leaves out, so the views
        // do not pass the newest part off as all of it
        const gaps = sub.truncated ? backlogGaps(sinceId, this.lastEventAt, sub.backlog, sub.backlogMax) : [];
        this.lastEventId = last.id;
        this.lastEventAt = last.at;
        this.emitEvents({ events: sub.backlog, resync: true, ...(gaps.length ? { gaps } : {}), ...(away ? { away } : {}) });
      } else {
        // nothing stored yet in the new history: say so now, so the old stream is not shown as current meanwhile
        if (this.resetPending || away) this.emitEvents({ events: [], resync: true, ...(away ? { away } : {}) });
        this.lastEventId = Math.max(this.lastEventId, sub.lastId);
      }
      this.startHeartbeat(gen, ws);
      this.reached = true;
      this.lost = null;
      this.lostAt = null;
      this.set({
        status: 'connected',
        role: login.role,
        tokenName: login.name,
        relay: { hostname: login.relay.hostname, smtp: login.relay.smtp },
        // (the token's name and its role: "as admin (admin)" read as a typo when the two are the same)
        message: `Connected to ${login.relay.hostname} with the token "${login.name}" (${login.role} role).`,
        attempt: 0,
        retryAt: null,
      });
      // consumers refetch the config and the rest after a reconnect, and after a switch from another relay (what they
      // cached is that relay's, and may look fresh for a few seconds yet)
      if (consumersHoldData) this.emit('config', { revision: login.configRevision, by: 'resync', source: 'reconnect' });
    } catch (err) {
      // the socket closed under the login: the close handler has scheduled the retry already (a second one here
      // would count the attempt twice and double the backoff)
      if (gen !== this.generation || this.rpc !== rpc) return;
      if (err instanceof RpcError && err.code === ErrorCode.Unauthenticated) {
        return this.stop(gen, 'auth-failed', 'The relay refused the token. Paste a valid token (the admin-token file on the relay, or one from "token create").');
      }
      if (err instanceof RpcError && err.code === ErrorCode.RateLimited) {
        // wait as long as the relay asks (its lockout), not less: an earlier attempt is refused again
        const asked = RateLimitedData.safeParse(err.data);
        const wait = asked.success ? asked.data.retryAfterMs : LOCKED_OUT_RETRY_MS;
        return this.scheduleRetry(gen, 'Too many failed logins from this address: the relay locked it out.', wait, true);
      }
      this.scheduleRetry(gen, `Login failed: ${(err as Error).message}`);
    }
  }

  /** Emit a batch; the first one after a change of history carries reset: true. */
  private emitEvents(b: EventBatch): void {
    if (this.resetPending) {
      this.resetPending = false;
      b = { ...b, reset: true };
    }
    this.emit('events', b);
  }

  /**
   * Every heartbeatMs: if the relay did not answer the previous ping, drop the socket (the close handler
   * reconnects), else ping again. One timer of the injected Timers at a time, re-armed by each tick, so a test's
   * fake clock drives it like the retry timer.
   */
  private startHeartbeat(gen: number, ws: WebSocket): void {
    const every = this.opts.heartbeatMs ?? 15_000;
    let alive = true;
    ws.on('pong', () => (alive = true));
    const tick = () => {
      this.heartbeat = null;
      if (gen !== this.generation || this.ws !== ws) return;
      if (!alive) {
        // the relay stopped answering: drop the socket; the close handler reconnects
        ws.terminate();
        return;
      }
      alive = false;
      try {
        ws.ping();
      } catch {
        ws.terminate();
        return;
      }
      arm();
    };
    const arm = () => {
      this.heartbeat = this.timers.setTimeout(tick, every);
      // the real timer must not keep a Node process alive by itself
      (this.heartbeat as { unref?: () => void } | null)?.unref?.();
    };
    this.stopHeartbeat();
    arm();
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== null) this.timers.clearTimeout(this.heartbeat);
    this.heartbeat = null;
  }

  private stop(gen: number, status: 'auth-failed' | 'disconnected', message: string): void {
    if (gen !== this.generation) return;
    this.teardown();
    this.set({ status, message, retryAt: null });
  }

  /** `lockout`: the wait is the relay's lockout of this address (message: the refusal, without a countdown) */
  private scheduleRetry(gen: number, message: string, minDelayMs = 0, lockout = false): void {
    if (gen !== this.generation) return;
    this.teardown();
    if (lockout) this.lockout = message;
    const attempt = this.st.attempt + 1;
    const base = this.opts.backoffBaseMs ?? 500;
    const cap = this.opts.backoffMaxMs ?? 30_000;
    const exp = Math.min(cap, base * 2 ** Math.min(attempt - 1, 16));
    const delay = Math.max(minDelayMs, Math.round(exp * (0.5 + this.timers.random() / 2)));
    const retryAt = this.timers.now() + delay;
    this.set({ status: 'reconnecting', message: lockout ? `${message} The console tries again when the lockout ends.` : message, attempt, retryAt });
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (gen !== this.generation) return;
      this.lockout = null;
      this.set({ status: 'connecting', message: this.lost ? `${this.lost} Reconnecting…` : 'Reconnecting…' });
      void this.attempt(gen, null);
    }, delay);
  }

  /**
   * A profile was saved. When it is the one this connection is for (connected, trying, refused, or stopped on it),
   * its new host, port or token take effect at once: a refused token pasted again must not leave the console showing
   * the refusal with the relay never asked again. Two exceptions: a changed name only, which is shown at once (the
   * status bar names the profile) without connecting again; and a new token for an address the relay has locked out,
   * which waits for the lockout's end (an earlier attempt meets the refusal again), as the message then says.
   * Returns which of these it did (profiles.save passes it on to the renderer, whose toast says it).
   */
  profileChanged(profileId: string, change: ProfileChange): ProfileSaveConnection {
    if (this.st.profileId !== profileId) return 'not-current';
    // connected: only a real change is worth dropping a working session for
    const token = this.st.status === 'connected' ? change.tokenChanged : change.tokenGiven;
    if (!change.address && !token) {
      this.renamed(profileId);
      return 'unchanged';
    }
    if (this.st.status === 'reconnecting' && this.lockout !== null && !change.address) {
      this.set({ message: `${this.lockout} The console tries the new token when the lockout ends.`, ...this.nameOf(profileId) });
      return 'after-lockout';
    }
    // connect() sets the 'connecting' state before its first await: the state says so by the time this returns
    this.connect(profileId).catch((err: unknown) => console.error(`reconnecting with the saved settings failed: ${(err as Error).message}`));
    return 'reconnecting';
  }

  /** the profile's name as saved now, when the state shows another (connect() takes it from the profile itself) */
  private nameOf(profileId: string): { profileName?: string } {
    const name = this.opts.profiles.get(profileId)?.name;
    return name !== undefined && name !== this.st.profileName ? { profileName: name } : {};
  }

  /** the profile this connection is on was renamed: the state (the status bar, the Servers card) says its new name */
  private renamed(profileId: string): void {
    const patch = this.nameOf(profileId);
    if (patch.profileName !== undefined) this.set(patch);
  }

  call<M extends MethodName>(method: M, params: Params<M>): Promise<Result<M>> {
    if (!this.rpc || this.st.status !== 'connected') {
      return Promise.reject(new TransportError('closed', `not connected to a relay (${this.st.status}): ${this.st.message}`));
    }
    return this.rpc.call(method, params);
  }
}
