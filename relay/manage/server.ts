/**
 * The management channel: a wss server (ws over https with the relay's certificate) speaking JSON-RPC 2.0, one object
 * (or a batch array) per text frame, frames at most MAX_FRAME_BYTES (ws closes with 1009 past it).
 *
 * - The first request must be auth.login within LOGIN_TIMEOUT_MS; until then every other method answers 4001.
 *   Failed logins are counted per IP (LoginGuard): past the limit the IP is locked out (4029, socket closed).
 * - Roles are enforced here, before a handler runs (4003). Params are validated with shared/protocol.ts (-32602).
 * - Every admin method is audited (DIR/audit.jsonl), success or failure.
 * - Events: one bus listener fans each event out to the subscriptions (a filter test and a push onto a bounded
 *   array), visiting only the sessions that hold a subscription (kept in a set as they subscribe, unsubscribe and
 *   close), so idle consoles cost the bus nothing; a timer sends each subscription's buffer as one events.batch
 *   every BATCH_INTERVAL_MS. A console whose socket does not drain (bufferedAmount over a limit) gets nothing more
 *   until it does; its buffer fills and the overflow is dropped and counted (`dropped` in the next batch); stalled
 *   for stallTimeoutMs, it is disconnected.
 *   Nothing here ever makes the bus, and so the SMTP path, wait.
 * - Requests are rate limited per connection (token bucket), every frame counted before it is parsed; a connection
 *   that keeps flooding is closed (4029).
 * - Before login a connection costs almost nothing: frames of at most preLoginMaxFrameBytes, and a budget of its own
 *   (maxAnonymousSessions overall, maxAnonymousSessionsPerIp per address), apart from the logged-in sessions'
 *   maxSessions, so sockets that never log in cannot lock the admins out.
 * - The TLS listener: a short handshake timeout, the upgrade within upgradeTimeoutMs, at most maxPendingConnections
 *   TCP connections not logged in (maxConnectionsPerIp per address), and server.maxConnections as the backstop; a
 *   refusal is logged (at most a line a minute per kind). TLS 1.2 offers AEAD suites only.
 * - Replies are held to back-pressure like events: a session with more than maxBufferedBytes unsent is refused (4029)
 *   until it reads; a reply frame is at most maxReplyBytes, and a batch stops running requests once its replies reach
 *   maxBatchReplyBytes.
 * - WebSocket upgrades that carry an Origin header (a browser page) are refused (403): consoles and scripts send none.
 * - A revoked token's sessions close at once (TokenStore.onRevoke, also after SIGHUP for a CLI revoke).
 */
import https from 'node:https';
import type net from 'node:net';
import type tls from 'node:tls';
import type { z } from 'zod';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { normalizeIp } from '../../shared/ip.ts';
import {
  BATCH_INTERVAL_MS,
  RequestId,
  CloseCode,
  ErrorCode,
  JsonRpcRequest,
  LOGIN_TIMEOUT_MS,
  MAX_FRAME_BYTES,
  Methods,
  POSITIONAL_PARAMS,
  RpcError,
  STATS_TICK_MS,
  isMethodName,
  toIssues,
  type MethodName,
} from '../../shared/protocol.ts';
import type { RelayEvent } from '../../shared/events.ts';
import { configErrorMap } from '../../shared/config.ts';
import { auditParams, type AuditRecord } from '../store/audit.ts';
import { ConfigError } from '../store/config-store.ts';
import { LoginGuard } from './login-guard.ts';
import { createHandlers, loginInfo, type CallContext, type Handlers, type MethodDeps } from './methods.ts';
import { RateLimit, Session } from './session.ts';
import { StatsCollector } from './stats.ts';

export interface ManageLimits {
  loginTimeoutMs: number;
  maxLoginFailures: number;
  loginFailureWindowMs: number;
  lockoutMs: number;
  /** sustained requests a second per connection, and the burst */
  requestsPerSecond: number;
  requestBurst: number;
  /** rate-limited requests within 10 s before the connection is closed */
  floodCloseAfter: number;
  /** events a subscription holds for a console that does not keep up; past it they are dropped */
  subscriberBufferEvents: number;
  /** a socket with more than this waiting to be sent gets no more batches, ticks or replies until it drains */
  maxBufferedBytes: number;
  /** frames of one connection being answered at once; the next wait (unread) until one is done */
  maxInFlightRequests: number;
  /** a socket stuck over maxBufferedBytes this long is closed (CloseCode.Stalled) */
  stallTimeoutMs: number;
  batchIntervalMs: number;
  statsTickMs: number;
  maxBatchEvents: number;
  maxSubscriptionsPerSession: number;
  /** events.subscribe's backlog holds at most the newest this many matching events since sinceId (told in its result) */
  backlogMax: number;
  /**
   * events.subscribe reads at most this many stored events (by id span) below the bus's memory looking for its
   * backlog; past it the backlog ends there and says `truncated` (a narrow filter over a long history). Never less
   * than backlogMax + 1, so an unfiltered backlog is only cut for having more than backlogMax events.
   */
  backlogScanMax: number;
  /** logged-in sessions at once (a login past it is refused with 4029) */
  maxSessions: number;
  maxBatchRequests: number;
  /** the largest frame a connection may send before it has logged in (auth.login is tiny) */
  preLoginMaxFrameBytes: number;
  /** WebSocket sessions not logged in yet, overall and per address (their own budget, apart from maxSessions) */
  maxAnonymousSessions: number;
  maxAnonymousSessionsPerIp: number;
  /** TCP connections not logged in (TLS handshake, upgrade, before auth.login), overall and per address */
  maxPendingConnections: number;
  maxConnectionsPerIp: number;
  /** the TLS handshake must be done within this (Node's default is 120 s) */
  tlsHandshakeTimeoutMs: number;
  /** after the handshake, the WebSocket upgrade must come within this */
  upgradeTimeoutMs: number;
  /** the largest frame the relay sends: a reply past it is replaced by an error saying so */
  maxReplyBytes: number;
  /** a batch whose replies reach this runs no more of its requests (they are answered "ask in smaller batches") */
  maxBatchReplyBytes: number;
}

export const DEFAULT_LIMITS: ManageLimits = {
  loginTimeoutMs: LOGIN_TIMEOUT_MS,
  maxLoginFailures: 5,
  loginFailureWindowMs: 60_000,
  lockoutMs: 5 * 60_000,
  requestsPerSecond: 50,
  requestBurst: 200,
  floodCloseAfter: 500,
  subscriberBufferEvents: 20_000,
  maxBufferedBytes: 1024 * 1024,
  maxInFlightRequests: 8,
  stallTimeoutMs: 30_000,
  batchIntervalMs: BATCH_INTERVAL_MS,
  statsTickMs: STATS_TICK_MS,
  maxBatchEvents: 5000,
  maxSubscriptionsPerSession: 8,
  backlogMax: 10_000,
  backlogScanMax: 200_000,
  maxSessions: 256,
  maxBatchRequests: 50,
  preLoginMaxFrameBytes: 4096,
  maxAnonymousSessions: 64,
  maxAnonymousSessionsPerIp: 8,
  maxPendingConnections: 128,
  maxConnectionsPerIp: 16,
  tlsHandshakeTimeoutMs: 5000,
  upgradeTimeoutMs: 10_000,
  maxReplyBytes: 16 * 1024 * 1024,
  maxBatchReplyBytes: 4 * 1024 * 1024,
};

/**
 * TLS 1.2: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only (no CBC, no SHA-1 MACs); ECDSA (the relay's own
 * certificate) or RSA (a tls.certFile may be). TLS 1.3: its three usual suites, as Node offers them.
 */
export const MANAGE_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/**
 * Audit lines written one by one each minute for failed logins (over every address) and for one token's admin calls
 * refused by its role: each line is fdatasynced on the main thread, so neither a spray of logins nor a viewer that
 * loops on an admin method may make the relay sync the disk without bound. Past it they are counted in one line.
 */
const AUDITS_PER_MINUTE = 60;

export interface ManageServerOptions extends Omit<MethodDeps, 'stats' | 'sessions' | 'limits' | 'info'> {
  identity: { cert: string; key: string; fingerprint256: string };
  hostname: () => string;
  smtpAddress: () => string;
  limits?: Partial<ManageLimits>;
  /** wall clock for lockouts, rate limits and stalls (the relay's clock may be a test's fake one) */
  wallClock?: () => number;
  log?: (line: string) => void;
}

type Reply = { jsonrpc: '2.0'; id: RequestId; result: unknown } | { jsonrpc: '2.0'; id: RequestId; error: { code: number; message: string; data?: unknown } };

const errorReply = (id: RequestId, code: number, message: string, data?: unknown): Reply => ({
  jsonrpc: '2.0',
  id,
  error: data === undefined ? { code, message } : { code, message, data },
});

/** The request's id when it is a valid one (the envelope's RequestId: a safe integer, or text of at most 200), else null. */
function idOf(raw: unknown): RequestId {
  if (raw && typeof raw === 'object' && !Array.isArray(raw) && 'id' in raw) {
    const id = RequestId.safeParse((raw as { id: unknown }).id);
    if (id.success) return id.data;
  }
  return null;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** a request without id (a JSON-RPC notification): it gets no reply, not even an error (an invalid one does) */
const isNotification = (v: unknown): boolean => isRecord(v) && !('id' in v) && v.jsonrpc === '2.0' && typeof v.method === 'string';

/** the method a request names, when it is one */
const methodOf = (v: unknown): MethodName | null => (isRecord(v) && typeof v.method === 'string' && isMethodName(v.method) ? v.method : null);

const textOf = (data: RawData): string => (Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8'));

/** the most a "not run" refusal in a batch's reply takes (its id is at most 200 characters) */
const NOT_RUN_REPLY_MAX = 600;

/** how long a console refused for a full session table is asked to wait */
const SESSIONS_FULL_RETRY_MS = 60_000;

/** frames held for a console that does not read its replies; one more closes it (the socket is paused, so only a
 * client that sent them all at once gets here) */
const HELD_FRAMES_MAX = 1000;

/** how often a held console is checked for having read */
const HOLD_CHECK_MS = 50;

/** `by` in the audit line of a failed login */
const NOT_LOGGED_IN = '(not logged in)';

const frameBytes = (data: RawData): number => (Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer | ArrayBuffer).byteLength);

/**
 * The most a frame may be on this connection, as ws checks it while it reads the frame's header (so an oversized
 * frame is refused before it is buffered). ws has no public setter for one connection: this sets a private field of
 * its receiver, which is why package.json pins ws at exactly 8.23.0. Where the receiver is not what this expects (another
 * ws), nothing is changed, and onMessage's own check still refuses the frame once it is read.
 */
function setFrameLimit(ws: WebSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
  if (receiver && typeof receiver._maxPayload === 'number') receiver._maxPayload = bytes;
}

export class ManageServer {
  readonly limits: ManageLimits;
  readonly stats: StatsCollector;
  private readonly opts: ManageServerOptions;
  private readonly https: https.Server;
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<Session>();
  /**
   * The sessions holding at least one subscription: the only ones the event fan-out and the batch timer visit.
   * Subscriptions change only inside a request's handler (events.subscribe, events.unsubscribe), and are cleared when
   * a session closes; handle() re-checks the session after its handler, the socket's close removes it, and the
   * fan-out drops a session it finds with no subscription left (a close from anywhere clears them).
   */
  private readonly subscribed = new Set<Session>();
  /** TLS sockets that have upgraded to a WebSocket (the upgrade timer leaves them alone) */
  private readonly upgraded = new WeakSet<net.Socket>();
  /** TCP connections not logged in yet (by "address|port"), oldest first, and how many per address */
  private readonly pending = new Map<string, { socket: net.Socket; ip: string }>();
  private readonly pendingByIp = new Map<string, number>();
  /** each session's TCP connection ("address|port", as in `pending`) */
  private readonly tcpKey = new WeakMap<Session, string>();
  /** refusals logged: per kind, when the last line was written and how many were refused since */
  private readonly refusals = new Map<string, { at: number; since: number }>();
  /** audit lines of a bounded kind written in the current minute, and those left out (see AUDITS_PER_MINUTE) */
  private readonly auditBudgets = new Map<string, { minute: number; audited: number; skipped: number }>();
  private readonly handlers: Handlers;
  private readonly deps: MethodDeps;
  private readonly guard: LoginGuard;
  private readonly wall: () => number;
  private readonly log: (line: string) => void;
  private readonly unsubscribers: (() => void)[] = [];
  private batchTimer: NodeJS.Timeout | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private nextSession = 1;
  private droppedTotal = 0;
  private readonly startedAt: number;
  /** the session whose request is being handled (a self-revoke closes it after the reply) */
  private current: Session | null = null;

  constructor(opts: ManageServerOptions) {
    this.opts = opts;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.wall = opts.wallClock ?? Date.now;
    this.log = opts.log ?? ((line) => console.error(line));
    this.startedAt = opts.now();
    this.guard = new LoginGuard({
      maxFailures: this.limits.maxLoginFailures,
      windowMs: this.limits.loginFailureWindowMs,
      lockoutMs: this.limits.lockoutMs,
      now: this.wall,
    });
    this.stats = new StatsCollector({
      anvil: opts.anvil,
      queue: opts.queue,
      history: opts.history,
      manage: () => ({ sessions: this.authenticatedCount(), subscriptions: this.subscriptionCount(), droppedEvents: this.droppedTotal }),
      lastEventId: () => opts.bus.lastId,
      configRevision: () => opts.revisions.current,
      now: opts.now,
    });
    this.deps = {
      ...opts,
      stats: this.stats,
      sessions: () => this.sessions,
      limits: this.limits,
      info: () => ({ hostname: opts.hostname(), smtp: opts.smtpAddress(), fingerprint256: opts.identity.fingerprint256, startedAt: this.startedAt }),
    };
    this.handlers = createHandlers(this.deps);

    this.https = https.createServer(
      {
        cert: opts.identity.cert,
        key: opts.identity.key,
        minVersion: 'TLSv1.2',
        ciphers: MANAGE_CIPHERS,
        handshakeTimeout: this.limits.tlsHandshakeTimeoutMs,
      },
      (_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket' });
        res.end('This is the Relay Warden management port: connect with a WebSocket (wss://) and speak JSON-RPC 2.0.\n');
      },
    );
    // the backstop for file descriptors: logged-in sessions plus the connections not logged in (held per connection
    // below; a connection closed to make room takes a moment to be gone, hence the margin)
    this.https.maxConnections = this.limits.maxSessions + this.limits.maxPendingConnections + 64;
    this.https.on('drop', () => {
      this.refusal('tcp-total', `manage: refused connections: the management port holds ${this.https.maxConnections} connections (the most it takes)`);
    });
    this.https.on('connection', (socket: net.Socket) => this.onTcpConnection(socket));
    this.https.on('secureConnection', (socket: tls.TLSSocket) => {
      // the handshake is done: the WebSocket upgrade must follow soon (a socket that sends nothing more is closed)
      const timer = setTimeout(() => {
        if (!this.upgraded.has(socket)) socket.destroy();
      }, this.limits.upgradeTimeoutMs);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    });
    this.https.on('tlsClientError', () => {
      // a client that does not trust the certificate, a handshake that timed out, or a scanner: nothing to do
    });
    this.wss = new WebSocketServer({
      server: this.https,
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      clientTracking: false,
      // a browser always sends Origin; the console and scripts never do: a web page the admin visits must not be
      // able to open the channel (and spend the admin's login attempts or session slots)
      verifyClient: (info: { req: import('node:http').IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
        const h = info.req.headers;
        if (h.origin === undefined && h['sec-websocket-origin'] === undefined) return done(true);
        const ip = normalizeIp(info.req.socket.remoteAddress ?? '') ?? 'unknown';
        this.refusal('origin', `manage: refused a WebSocket upgrade from ${ip} with Origin ${JSON.stringify(String(h.origin ?? h['sec-websocket-origin'])).slice(0, 200)} (a browser page)`);
        done(false, 403, 'Forbidden: this port takes no requests from web pages (Origin header)');
      },
    });
    this.wss.on('connection', (ws, req) => this.onConnection(ws, req.socket));
    this.wss.on('error', (err) => this.log(`manage: ${err.message}`));

    this.unsubscribers.push(opts.bus.subscribe((e) => this.onEvent(e)));
    this.unsubscribers.push(opts.tokens.onRevoke((name) => this.revoked(name)));
    this.unsubscribers.push(
      opts.revisions.onRecord((r) => {
        const text = JSON.stringify({ jsonrpc: '2.0', method: 'config.changed', params: { revision: r.revision, by: r.by, source: r.source } });
        for (const s of this.sessions) if (s.auth) s.sendText(text);
      }),
    );
  }

  async listen(host: string, port: number): Promise<net.AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.https.once('error', onError);
      this.https.listen(port, host, () => {
        this.https.off('error', onError);
        resolve();
      });
    });
    this.https.on('error', (err) => this.log(`manage: ${err.message}`));
    this.batchTimer = setInterval(() => this.flushBatches(), this.limits.batchIntervalMs);
    this.batchTimer.unref();
    this.tickTimer = setInterval(() => this.tick(), this.limits.statsTickMs);
    this.tickTimer.unref();
    return this.https.address() as net.AddressInfo;
  }

  /** logged-in sessions right now */
  authenticatedCount(): number {
    let n = 0;
    for (const s of this.sessions) if (s.auth && !s.closed) n++;
    return n;
  }

  private subscriptionCount(): number {
    let n = 0;
    for (const s of this.subscribed) n += s.subscriptions.size;
    return n;
  }

  /** bytes sent to the consoles that they have not read yet, in all (read-only; for tests and diagnostics) */
  get unsentBytes(): number {
    let n = 0;
    for (const s of this.sessions) n += s.bufferedAmount;
    return n;
  }

  /** sessions in the event fan-out right now (read-only; for tests and diagnostics) */
  get subscribedSessions(): number {
    return this.subscribed.size;
  }

  /** Put the session in the fan-out set when it holds a subscription, take it out when it holds none. */
  private trackSubscriptions(s: Session): void {
    if (s.subscriptions.size > 0 && !s.closed) this.subscribed.add(s);
    else this.subscribed.delete(s);
  }

  // --- connections ---------------------------------------------------------------------------------------------

  /**
   * Log a refusal of `kind`: the first at once, then at most one line a minute per kind, saying how many were refused
   * since the last line (a flood of refusals must not become a flood of log lines).
   */
  private refusal(kind: string, line: string): void {
    const now = this.wall();
    const r = this.refusals.get(kind);
    if (r && now - r.at < 60_000) {
      r.since++;
      return;
    }
    const more = r && r.since > 0 ? ` (and ${r.since} more refused in the last ${Math.round((now - r.at) / 1000)} s)` : '';
    this.refusals.set(kind, { at: now, since: 0 });
    this.log(`${line}${more}`);
  }

  /**
   * A new TCP connection, before TLS. Connections not logged in yet (handshaking, upgrading, or a WebSocket before
   * auth.login) are held to maxConnectionsPerIp per address (one past it is closed at once: no TLS, nothing read) and
   * to maxPendingConnections in all: past that the oldest of them makes room, so connections that never log in can
   * fill no table an admin needs (an admin's connection logs in within a round trip or two of its handshake).
   * Logged-in sessions leave this count (maxSessions holds them).
   */
  private onTcpConnection(socket: net.Socket): void {
    const ip = normalizeIp(socket.remoteAddress ?? '') ?? socket.remoteAddress ?? 'unknown';
    const fromIp = this.pendingByIp.get(ip) ?? 0;
    if (fromIp >= this.limits.maxConnectionsPerIp) {
      this.refusal('tcp-ip', `manage: refused a connection from ${ip}: it has ${this.limits.maxConnectionsPerIp} connections not logged in (the most taken from one address)`);
      socket.destroy();
      return;
    }
    if (this.pending.size >= this.limits.maxPendingConnections) {
      const [oldKey, oldest] = this.pending.entries().next().value!;
      this.refusal('tcp-pending', `manage: ${this.limits.maxPendingConnections} connections are not logged in (the most held at once): the oldest (from ${oldest.ip}) was closed for a new one from ${ip}`);
      this.leavePending(oldKey);
      oldest.socket.destroy();
    }
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    this.pending.set(key, { socket, ip });
    this.pendingByIp.set(ip, fromIp + 1);
    socket.once('close', () => {
      if (this.pending.get(key)?.socket === socket) this.leavePending(key);
    });
  }

  /** A connection is no longer pending: logged in, closed, or made room for a newer one. */
  private leavePending(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    this.pending.delete(key);
    const n = (this.pendingByIp.get(p.ip) ?? 1) - 1;
    if (n > 0) this.pendingByIp.set(p.ip, n);
    else this.pendingByIp.delete(p.ip);
  }

  /** WebSocket sessions not logged in (nor closed): overall, from `ip`, and the oldest of them */
  private anonymousCount(ip: string): { total: number; fromIp: number; oldest: Session | null } {
    let total = 0;
    let fromIp = 0;
    let oldest: Session | null = null;
    for (const s of this.sessions) {
      if (s.auth || s.closed) continue;
      oldest ??= s;
      total++;
      if (s.ip === ip) fromIp++;
    }
    return { total, fromIp, oldest };
  }

  private onConnection(ws: WebSocket, socket: net.Socket): void {
    this.upgraded.add(socket);
    const ip = normalizeIp(socket.remoteAddress ?? '') ?? socket.remoteAddress ?? 'unknown';
    const anonymous = this.anonymousCount(ip);
    const session = new Session(`m${this.nextSession++}`, ws, ip, new RateLimit(this.limits.requestsPerSecond, this.limits.requestBurst, this.wall));
    this.sessions.add(session);
    this.tcpKey.set(session, `${socket.remoteAddress}|${socket.remotePort}`);
    // until auth.login, a frame may be only a few KiB (ws refuses a bigger one from its header, before reading it)
    setFrameLimit(ws, this.limits.preLoginMaxFrameBytes);
    ws.on('error', () => {
      // 1009 (too big) and protocol errors: ws closes the socket itself
    });
    ws.on('close', () => {
      session.closed = true;
      session.subscriptions.clear();
      if (session.loginTimer) clearTimeout(session.loginTimer);
      this.sessions.delete(session);
      this.subscribed.delete(session);
    });
    const locked = this.guard.lockedFor(ip);
    if (locked > 0) {
      session.close(CloseCode.RateLimited, 'locked-out', `too many failed logins from ${ip}; try again in ${Math.ceil(locked / 1000)} s`, locked);
      return;
    }
    // connections that have not logged in have a small budget of their own, so they can never keep the admins out
    if (anonymous.fromIp >= this.limits.maxAnonymousSessionsPerIp) {
      this.refusal('anon-ip', `manage: refused a session from ${ip}: it has ${this.limits.maxAnonymousSessionsPerIp} sessions not logged in`);
      session.close(
        CloseCode.RateLimited,
        'flood',
        `${ip} has ${this.limits.maxAnonymousSessionsPerIp} sessions that have not logged in (the most allowed); log in on one or close one`,
      );
      return;
    }
    if (anonymous.total >= this.limits.maxAnonymousSessions && anonymous.oldest) {
      // the oldest makes room: sessions that never log in cannot keep a new one (an admin's) from logging in
      const old = anonymous.oldest;
      this.refusal('anon-total', `manage: ${this.limits.maxAnonymousSessions} sessions have not logged in: the oldest (from ${old.ip}) was closed for a new one from ${ip}`);
      old.close(
        CloseCode.RateLimited,
        'flood',
        `closed to make room: the relay holds at most ${this.limits.maxAnonymousSessions} sessions that have not logged in, and this one was the oldest`,
      );
    }
    session.loginTimer = setTimeout(() => {
      if (!session.auth) session.close(CloseCode.LoginTimeout, 'login-timeout', `no auth.login within ${this.limits.loginTimeoutMs / 1000} s`);
    }, this.limits.loginTimeoutMs);
    session.loginTimer.unref();
    ws.on('message', (data, isBinary) => {
      this.onMessage(session, data, isBinary).catch((err: Error) => this.log(`manage: internal error: ${err.stack ?? err.message}`));
    });
  }

  private async onMessage(s: Session, data: RawData, isBinary: boolean): Promise<void> {
    if (s.closed) return;
    if (isBinary) {
      s.close(CloseCode.UnsupportedData, 'flood', 'binary frames are not part of this protocol; send JSON-RPC as text');
      return;
    }
    const bytes = frameBytes(data);
    // before login a frame is a few KiB at most (ws refuses a bigger one from its header already, where it can)
    if (!s.auth && bytes > this.limits.preLoginMaxFrameBytes) {
      s.close(CloseCode.MessageTooBig, 'flood', `a frame of ${bytes} bytes before auth.login; at most ${this.limits.preLoginMaxFrameBytes} until logged in`);
      return;
    }
    // every frame costs one request from the rate limit before it is parsed (a frame that is not JSON, an empty or an
    // oversized batch too): a connection over its rate costs no JSON.parse of what it sends
    if (this.limited(s)) {
      if (!s.closed) this.refuseFrame(s, data, bytes);
      return;
    }
    // replies are held to back-pressure as events are: while the console has more than maxBufferedBytes unsent, or
    // maxInFlightRequests frames of its own being answered, its requests wait (unread: the socket is paused) until it
    // reads; stalled for stallTimeoutMs, it is closed
    if (s.waiting.length > 0 || !this.canServe(s)) {
      this.hold(s, data);
      return;
    }
    return this.run(s, data);
  }

  /** Does the console keep up enough to be served another frame now? */
  private canServe(s: Session): boolean {
    return s.inFlight < this.limits.maxInFlightRequests && s.bufferedAmount <= this.limits.maxBufferedBytes;
  }

  private async run(s: Session, data: RawData): Promise<void> {
    s.inFlight++;
    try {
      await this.process(s, data);
    } finally {
      s.inFlight--;
      if (s.waiting.length > 0) this.pump(s);
    }
  }

  /** A frame that waits for the console to read what it was sent (the socket stops being read meanwhile). */
  private hold(s: Session, data: RawData): void {
    s.waiting.push(data);
    if (s.waiting.length > HELD_FRAMES_MAX) {
      s.close(CloseCode.RateLimited, 'flood', `${s.waiting.length} requests sent while this console read none of its replies`);
      return;
    }
    if (s.waitTimer) return;
    s.ws.pause();
    s.waitTimer = setInterval(() => {
      if (s.closed) return;
      // keepsUp closes the session once it has been stuck for stallTimeoutMs
      if (!this.keepsUp(s, this.wall())) return;
      this.pump(s);
    }, HOLD_CHECK_MS);
    s.waitTimer.unref();
  }

  /** Serve held frames, in order, as far as the console keeps up; once none wait, read its socket again. */
  private pump(s: Session): void {
    if (s.closed) return;
    while (s.waiting.length > 0 && this.canServe(s)) {
      this.run(s, s.waiting.shift()!).catch((err: Error) => this.log(`manage: internal error: ${err.stack ?? err.message}`));
    }
    if (s.waiting.length === 0 && s.waitTimer) {
      clearInterval(s.waitTimer);
      s.waitTimer = null;
      s.ws.resume();
    }
  }

  /** A frame the rate limit and the back-pressure have let through: parsed, run, answered. */
  private async process(s: Session, data: RawData): Promise<void> {
    if (s.closed) return;
    let msg: unknown;
    try {
      msg = JSON.parse(textOf(data));
    } catch (err) {
      s.send(errorReply(null, ErrorCode.ParseError, `the frame is not JSON: ${(err as Error).message}`));
      return;
    }
    if (Array.isArray(msg)) {
      if (msg.length === 0) return s.send(errorReply(null, ErrorCode.InvalidRequest, 'an empty batch'));
      if (msg.length > this.limits.maxBatchRequests) {
        return s.send(errorReply(null, ErrorCode.InvalidRequest, `a batch of ${msg.length} requests; at most ${this.limits.maxBatchRequests}`));
      }
      return this.runBatch(s, msg);
    }
    const after: (() => void)[] = [];
    const r = await this.handle(s, msg, after, true);
    if (r) s.sendText(this.replyText(r, this.limits.maxReplyBytes, false).text);
    for (const f of after) f();
    this.afterReply(s);
  }

  /**
   * A batch: its requests one after the other (the frame paid for the first; each other one takes its own request
   * from the rate limit), their replies in one frame. Once the replies hold maxBatchReplyBytes, the requests left
   * are not run: each with an id is told to come again in a smaller batch. The frame never exceeds maxReplyBytes.
   */
  private async runBatch(s: Session, msg: unknown[]): Promise<void> {
    const texts: string[] = [];
    const after: (() => void)[] = [];
    let bytes = 2;
    for (let i = 0; i < msg.length; i++) {
      const m = msg[i];
      if (bytes >= this.limits.maxBatchReplyBytes) {
        const r = this.notRun(s, m, bytes);
        if (r) {
          const text = JSON.stringify(r);
          texts.push(text);
          bytes += Buffer.byteLength(text) + 1;
        }
        continue;
      }
      const r = await this.handle(s, m, after, i === 0);
      if (!r) continue;
      // what is left for this reply: the frame's limit, less the replies before it and room for the short refusals
      // of the requests after it
      const room = this.limits.maxReplyBytes - bytes - (msg.length - i - 1) * NOT_RUN_REPLY_MAX;
      const out = this.replyText(r, room, true);
      texts.push(out.text);
      bytes += out.bytes + 1;
    }
    if (texts.length) s.sendText(`[${texts.join(',')}]`);
    for (const f of after) f();
    this.afterReply(s);
  }

  /** A request of a batch past maxBatchReplyBytes: not run; an admin call is audited as refused. */
  private notRun(s: Session, m: unknown, bytes: number): Reply | null {
    const r = errorReply(
      idOf(m),
      ErrorCode.InvalidRequest,
      `not run: this batch's replies already hold ${bytes} bytes (a batch runs no more requests once its replies reach ${this.limits.maxBatchReplyBytes}); ask in smaller batches`,
    );
    const method = methodOf(m);
    if (method && Methods[method].access === 'admin' && s.auth) this.audit(s, method, isRecord(m) ? m.params : undefined, null, r);
    return isNotification(m) ? null : r;
  }

  /**
   * A reply as the frame's text, when it fits in `room` bytes; else an error in its place saying so (the request has
   * run; only its reply is left out), so no frame the relay sends is over maxReplyBytes.
   */
  private replyText(r: Reply, room: number, inBatch: boolean): { text: string; bytes: number } {
    const text = JSON.stringify(r);
    const bytes = Buffer.byteLength(text);
    if (bytes <= room) return { text, bytes };
    const e = JSON.stringify(
      errorReply(
        r.id,
        ErrorCode.InvalidRequest,
        `the reply would be ${bytes} bytes, more than a frame from the relay carries (at most ${this.limits.maxReplyBytes} bytes${inBatch ? ', with the replies before it in this batch' : ''}); the request ran, its reply is left out: ask for less (a smaller limit${inBatch ? ', or a smaller batch' : ''})`,
      ),
    );
    return { text: e, bytes: Buffer.byteLength(e) };
  }

  /** true when the connection is over its request rate (and closes it when it keeps on) */
  private limited(s: Session): boolean {
    if (s.rate.take()) return false;
    const now = this.wall();
    if (now - s.limitedSince > 10_000) {
      s.limitedSince = now;
      s.limited = 0;
    }
    s.limited++;
    if (s.limited >= this.limits.floodCloseAfter) {
      this.log(`manage: ${s.ip} (${s.auth?.name ?? 'not logged in'}) kept flooding requests; closed`);
      s.close(CloseCode.RateLimited, 'flood', `too many requests (more than ${this.limits.requestsPerSecond} a second)`);
    }
    return true;
  }

  private limitedReply(s: Session, id: RequestId): Reply {
    return errorReply(id, ErrorCode.RateLimited, `too many requests on this connection (at most ${this.limits.requestsPerSecond} a second); slow down`, {
      retryAfterMs: s.rate.retryAfterMs(),
    });
  }

  /**
   * A frame refused by the rate limit: answered 4029, with the request's id (a batch: one 4029 per request with an
   * id) when the frame is small enough to read at no cost to speak of; a bigger one is answered with id null, unread.
   * Notifications get no reply.
   */
  private refuseFrame(s: Session, data: RawData, bytes: number): void {
    let msg: unknown = null;
    if (bytes <= this.limits.preLoginMaxFrameBytes) {
      try {
        msg = JSON.parse(textOf(data));
      } catch {
        msg = null;
      }
    }
    if (Array.isArray(msg) && msg.length > 0 && msg.length <= this.limits.maxBatchRequests) {
      const replies = msg.filter((m) => !isNotification(m)).map((m) => this.limitedReply(s, idOf(m)));
      if (replies.length) s.send(replies);
      return;
    }
    if (isNotification(msg)) return;
    s.send(this.limitedReply(s, idOf(msg)));
  }

  private afterReply(s: Session): void {
    const c = s.closeAfterReply;
    if (c && !s.closed) s.close(c.code, c.why, c.message, c.retryAfterMs);
  }

  /** -32602 for `method`, the first issue in the message, in the words the config file's errors use */
  private invalidParams(id: RequestId, method: MethodName, error: z.ZodError, schema: z.ZodType): Reply {
    const issues = toIssues(error, schema);
    const first = issues[0];
    const where = first ? `${first.path.join('.') || 'params'}: ${first.message}` : 'params';
    return errorReply(id, ErrorCode.InvalidParams, `invalid params for ${method}: ${where}`, { issues });
  }

  /** -32602 for params given by position (an array): the methods take them by name */
  private positionalParams(id: RequestId, method: MethodName): Reply {
    const message = POSITIONAL_PARAMS;
    return errorReply(id, ErrorCode.InvalidParams, `invalid params for ${method}: params: ${message}`, { issues: [{ path: [], message, code: 'invalid_type' }] });
  }

  /**
   * One request: a reply, or null for a notification (a request without id). `after` collects what the handler asks
   * to run once its reply has been sent (ctx.afterReply): the caller runs it after sending the frame that holds it.
   * `counted`: the frame's rate-limit check has paid for it (a single request, or a batch's first).
   */
  private async handle(s: Session, raw: unknown, after: (() => void)[], counted: boolean): Promise<Reply | null> {
    if (s.closed) return null;
    const id = idOf(raw);
    // an earlier request of this batch ended the session (it revoked its own token, or its login locked the IP out):
    // the session closes once the batch's replies are sent, and nothing after that request runs
    if (s.closeAfterReply) return this.refuseAfterClose(s, raw, id);
    if (!counted && this.limited(s)) return s.closed || isNotification(raw) ? null : this.limitedReply(s, id);
    // params by position (an array) make a valid envelope whose params the method does not take (-32602 below)
    const positional = isRecord(raw) && Array.isArray(raw.params);
    const env = JsonRpcRequest.safeParse(positional ? { ...raw, params: undefined } : raw);
    if (!env.success) {
      return errorReply(id, ErrorCode.InvalidRequest, 'not a JSON-RPC 2.0 request: expected {"jsonrpc":"2.0","id":...,"method":"...","params":{...}}', {
        issues: toIssues(env.error),
      });
    }
    const req = env.data;
    const notification = req.id === undefined;
    if (!isMethodName(req.method)) {
      return notification ? null : errorReply(id, ErrorCode.MethodNotFound, `unknown method "${req.method}"; the methods are: ${Object.keys(Methods).join(', ')}`);
    }
    const method: MethodName = req.method;
    const spec = Methods[method];
    const params = positional ? (raw as { params: unknown }).params : req.params;
    /** the reply (none for a notification); every admin call of a logged-in session is audited, refused or not */
    const finish = (r: Reply, ctx: CallContext | null = null): Reply | null => {
      if (spec.access === 'admin' && s.auth) this.audit(s, method, params, ctx, r);
      return notification ? null : r;
    };
    if (method === 'auth.login') {
      let r: Reply;
      try {
        r = this.login(s, id, params, positional);
      } catch (err) {
        r = this.errorFor(id, err, method);
      }
      return notification ? null : r;
    }
    if (!s.auth) return notification ? null : errorReply(id, ErrorCode.Unauthenticated, 'not logged in: the first request must be auth.login {token}');
    if (spec.access === 'admin' && s.auth.role !== 'admin') {
      const r = errorReply(id, ErrorCode.Forbidden, `${method} needs an admin token; "${s.auth.name}" is a ${s.auth.role} token`);
      this.auditForbidden(s, method, params, r);
      return notification ? null : r;
    }
    if (positional) return finish(this.positionalParams(id, method));
    // a limit, not a rate: nothing to wait for (unsubscribe one first)
    if (method === 'events.subscribe' && s.subscriptions.size >= this.limits.maxSubscriptionsPerSession) {
      return finish(errorReply(id, ErrorCode.InvalidRequest, `this session has ${s.subscriptions.size} subscriptions (the most allowed); unsubscribe one first`));
    }
    const ctx: CallContext = { session: s, afterReply: after };
    let out: Reply;
    try {
      // in the words the config file's errors use ("must be a whole number; it is 1.5"), not zod's defaults; inside
      // the try, so a check that throws is answered (-32603) like a handler that throws, never with silence
      const parsed = spec.params.safeParse(req.params ?? {}, { error: configErrorMap });
      if (!parsed.success) return finish(this.invalidParams(id, method, parsed.error, spec.params));
      const handler = this.handlers[method] as unknown as (p: unknown, c: CallContext) => unknown;
      // `current` only while the handler runs synchronously (tokens.revoke does its work there): a handler that
      // awaits (a history scan, a simulation) must not make another session's revocation look like its own
      let pending: unknown;
      this.current = s;
      try {
        pending = handler(parsed.data, ctx);
      } finally {
        this.current = null;
      }
      // events.subscribe adds its subscription before its first await (then reads its backlog, yielding between
      // pages): the session joins the fan-out before anything else runs, so no event emitted after the handler's
      // lastId misses the new subscription. A session closed meanwhile is taken out again below (and by its close).
      this.trackSubscriptions(s);
      const result = await pending;
      out = { jsonrpc: '2.0', id, result };
    } catch (err) {
      out = this.errorFor(id, err, method);
    } finally {
      this.trackSubscriptions(s);
    }
    return finish(out, ctx);
  }

  /**
   * A request that comes after one that ended its session, in the same batch: it is not run. One with an id is told
   * why, as the session's other requests would be from now on: the revoked token (4001, naming it), the lockout
   * (4029 with retryAfterMs, as auth.login says it) or the full session table (4029); a notification gets no reply.
   * An admin call by a logged-in session, notification or not, is audited as refused, as every admin call is.
   */
  private refuseAfterClose(s: Session, raw: unknown, id: RequestId): Reply | null {
    const c = s.closeAfterReply!;
    const method = methodOf(raw);
    const what = method ?? 'this request';
    let r: Reply;
    if (c.why === 'locked-out') {
      const left = this.guard.lockedFor(s.ip) || (c.retryAfterMs ?? 0);
      r = errorReply(id, ErrorCode.RateLimited, `too many failed logins from ${s.ip}; try again in ${Math.ceil(left / 1000)} s (${what} was not run)`, {
        retryAfterMs: Math.max(0, Math.ceil(left)),
      });
    } else if (c.why === 'flood') {
      r = errorReply(id, ErrorCode.RateLimited, `${c.message} (${what} was not run)`, { retryAfterMs: Math.max(0, Math.ceil(c.retryAfterMs ?? 0)) });
    } else {
      r = errorReply(id, ErrorCode.Unauthenticated, `${c.message} by an earlier request of this batch; ${what} was not run`);
    }
    if (method && Methods[method].access === 'admin' && s.auth) this.audit(s, method, isRecord(raw) ? raw.params : undefined, null, r);
    return isNotification(raw) ? null : r;
  }

  private errorFor(id: RequestId, err: unknown, method: string): Reply {
    if (err instanceof RpcError) return errorReply(id, err.code, err.message, err.data);
    if (err instanceof ConfigError) {
      return errorReply(id, ErrorCode.InvalidConfig, err.message, { issues: err.issues.map((i) => ({ path: i.key.split('.'), message: i.message, code: 'custom' })) });
    }
    const e = err as Error;
    this.log(`manage: ${method} failed: ${e.stack ?? e.message}`);
    return errorReply(id, ErrorCode.InternalError, `${method} failed: ${e.message}`);
  }

  private login(s: Session, id: RequestId, params: unknown, positional: boolean): Reply {
    if (s.auth) return errorReply(id, ErrorCode.InvalidRequest, `already logged in as "${s.auth.name}"`);
    const locked = this.guard.lockedFor(s.ip);
    if (locked > 0) {
      s.closeAfterReply = { code: CloseCode.RateLimited, why: 'locked-out', message: `too many failed logins from ${s.ip}`, retryAfterMs: locked };
      const r = errorReply(id, ErrorCode.RateLimited, `too many failed logins from ${s.ip}; try again in ${Math.ceil(locked / 1000)} s`, { retryAfterMs: locked });
      this.auditFailedLogin(s, params, r);
      return r;
    }
    if (positional) return this.positionalParams(id, 'auth.login');
    const spec = Methods['auth.login'];
    const p = spec.params.safeParse(params ?? {}, { error: configErrorMap });
    if (!p.success) return this.invalidParams(id, 'auth.login', p.error, spec.params);
    const who = this.opts.tokens.verify(p.data.token);
    if (!who) {
      const lockout = this.guard.fail(s.ip);
      let r: Reply;
      if (lockout > 0) {
        this.log(`manage: ${s.ip} locked out for ${lockout / 60_000} min after ${this.limits.maxLoginFailures} failed logins`);
        s.closeAfterReply = { code: CloseCode.RateLimited, why: 'locked-out', message: `too many failed logins from ${s.ip}`, retryAfterMs: lockout };
        r = errorReply(id, ErrorCode.RateLimited, `too many failed logins from ${s.ip}; locked out for ${lockout / 60_000} minutes`, { retryAfterMs: lockout });
      } else {
        r = errorReply(id, ErrorCode.Unauthenticated, 'wrong or revoked token');
      }
      this.auditFailedLogin(s, params, r);
      return r;
    }
    // the logged-in sessions' own cap (sessions not logged in have theirs, so they never take these places)
    if (this.authenticatedCount() >= this.limits.maxSessions) {
      const message = `the relay has too many management sessions (limit ${this.limits.maxSessions}); try again later`;
      this.refusal('sessions', `manage: refused a login by "${who.name}" from ${s.ip}: ${this.limits.maxSessions} sessions are logged in`);
      s.closeAfterReply = { code: CloseCode.RateLimited, why: 'flood', message, retryAfterMs: SESSIONS_FULL_RETRY_MS };
      return errorReply(id, ErrorCode.RateLimited, message, { retryAfterMs: SESSIONS_FULL_RETRY_MS });
    }
    s.auth = { name: who.name, role: who.role };
    // its connection leaves the budget of those not logged in
    const key = this.tcpKey.get(s);
    if (key) this.leavePending(key);
    if (s.loginTimer) clearTimeout(s.loginTimer);
    s.loginTimer = null;
    setFrameLimit(s.ws, MAX_FRAME_BYTES);
    return { jsonrpc: '2.0', id, result: loginInfo(this.deps, who.name, who.role) };
  }

  /**
   * May one more audit line of `kind` be written this minute (at most AUDITS_PER_MINUTE)? When a new minute starts
   * after some were left out, `summary(skipped)` first writes the one line that counts them.
   */
  private auditBudget(kind: string, summary: (skipped: number) => void): boolean {
    const minute = Math.floor(this.wall() / 60_000);
    let b = this.auditBudgets.get(kind);
    if (!b || b.minute !== minute) {
      if (b && b.skipped > 0) summary(b.skipped);
      b = { minute, audited: 0, skipped: 0 };
      this.auditBudgets.set(kind, b);
    }
    if (b.audited >= AUDITS_PER_MINUTE) {
      b.skipped++;
      return false;
    }
    b.audited++;
    return true;
  }

  /**
   * A failed auth.login in the audit log, with the address (never the token). Bounded: the lockout holds each address
   * to a few a minute, and over all addresses at most AUDITS_PER_MINUTE a minute are written one by one; past it they
   * are counted, logged (a line a minute) and audited as one line once the minute is over.
   */
  private auditFailedLogin(s: Session, params: unknown, r: Reply): void {
    if (!('error' in r)) return;
    const fits = this.auditBudget('login', (skipped) =>
      this.appendAudit({
        by: NOT_LOGGED_IN,
        role: 'none',
        remoteIp: null,
        method: 'auth.login',
        params: {},
        ok: false,
        error: { code: ErrorCode.Unauthenticated, message: `${skipped} more failed logins in the minute before were not audited one by one (at most ${AUDITS_PER_MINUTE} a minute are)` },
      }),
    );
    if (!fits) {
      this.refusal('login-audit', `manage: more than ${AUDITS_PER_MINUTE} failed logins this minute (the last from ${s.ip}); the rest are counted in one audit line`);
      return;
    }
    this.appendAudit({
      by: NOT_LOGGED_IN,
      role: 'none',
      remoteIp: s.ip,
      method: 'auth.login',
      params: auditParams(params),
      ok: false,
      error: { code: r.error.code, message: r.error.message },
    });
  }

  /** An admin call refused for the token's role, audited (at most AUDITS_PER_MINUTE a minute per token, as above). */
  private auditForbidden(s: Session, method: string, params: unknown, r: Reply): void {
    const who = s.auth!;
    const fits = this.auditBudget(`forbidden:${who.name}`, (skipped) =>
      this.appendAudit({
        by: who.name,
        role: who.role,
        remoteIp: s.ip,
        method: '(admin calls refused)',
        params: {},
        ok: false,
        error: { code: ErrorCode.Forbidden, message: `${skipped} more admin calls by this ${who.role} token in the minute before were refused and not audited one by one (at most ${AUDITS_PER_MINUTE} a minute are)` },
      }),
    );
    if (fits) this.audit(s, method, params, null, r);
    else this.refusal(`forbidden:${who.name}`, `manage: "${who.name}" (${who.role}) called more than ${AUDITS_PER_MINUTE} admin methods this minute; the rest are counted in one audit line`);
  }

  private audit(s: Session, method: string, params: unknown, ctx: CallContext | null, out: Reply): void {
    const err = 'error' in out ? { code: out.error.code, message: out.error.message } : undefined;
    this.appendAudit({
      by: s.auth!.name,
      role: s.auth!.role,
      remoteIp: s.ip,
      method,
      params: auditParams(params),
      ok: err === undefined,
      ...(err ? { error: err } : {}),
      ...(ctx?.change ? { revision: ctx.change.revision, changes: ctx.change.changes } : {}),
    });
  }

  private appendAudit(rec: Omit<AuditRecord, 'seq' | 'time' | 'at'>): void {
    try {
      const at = this.opts.now();
      this.opts.audit.append({ time: new Date(at).toISOString(), at, ...rec });
    } catch (e) {
      this.log(`manage: could not write the audit log ${this.opts.audit.file}: ${(e as Error).message}`);
    }
  }

  // --- revocation ----------------------------------------------------------------------------------------------

  private revoked(name: string): void {
    for (const s of this.sessions) {
      if (s.auth?.name !== name || s.closed) continue;
      const message = `the token "${name}" was revoked`;
      if (s === this.current) {
        // it revoked its own token: it gets the reply, then the close
        s.subscriptions.clear();
        s.closeAfterReply = { code: CloseCode.TokenRevoked, why: 'revoked', message };
      } else {
        s.close(CloseCode.TokenRevoked, 'revoked', message);
      }
    }
  }

  // --- events and ticks ----------------------------------------------------------------------------------------

  private onEvent(e: RelayEvent): void {
    this.stats.onEvent(e);
    for (const s of this.subscribed) {
      if (s.subscriptions.size === 0) {
        // closed (Session.close clears its subscriptions) since it was tracked: out of the set (safe while iterating)
        this.subscribed.delete(s);
        continue;
      }
      for (const sub of s.subscriptions.values()) sub.offer(e);
    }
  }

  /** Is this session keeping up? Closes it when it has been stuck too long. */
  private keepsUp(s: Session, now: number): boolean {
    if (s.bufferedAmount <= this.limits.maxBufferedBytes) {
      s.stalledSince = null;
      return true;
    }
    s.stalledSince ??= now;
    if (now - s.stalledSince > this.limits.stallTimeoutMs) {
      this.log(`manage: ${s.ip} (${s.auth?.name ?? '?'}) read nothing for ${Math.round((now - s.stalledSince) / 1000)} s; closed`);
      s.close(CloseCode.Stalled, 'stalled', `this console did not read what the relay sent it (events or replies) for ${Math.round(this.limits.stallTimeoutMs / 1000)} s`);
    }
    return false;
  }

  private flushBatches(): void {
    const now = this.wall();
    for (const s of this.subscribed) {
      if (s.closed || s.subscriptions.size === 0) {
        this.subscribed.delete(s);
        continue;
      }
      if (!this.keepsUp(s, now)) {
        // a stalled session closed by keepsUp has no subscriptions any more
        if (s.closed) this.subscribed.delete(s);
        continue;
      }
      for (const sub of s.subscriptions.values()) {
        const dropped = sub.dropped;
        // in characters, a quarter of the largest frame (a character is at most 3 bytes of UTF-8, 4 for a pair of 2)
        const frame = sub.takeBatch(this.limits.maxBatchEvents, this.limits.maxReplyBytes / 4);
        if (frame === null) continue;
        this.droppedTotal += dropped;
        s.sendText(frame);
      }
    }
  }

  private tick(): void {
    this.stats.tick();
    const now = this.wall();
    let text: string | null = null;
    for (const s of this.sessions) {
      if (!s.auth || s.closed) continue;
      if (s.subscriptions.size === 0 && !this.keepsUp(s, now)) continue;
      if (s.bufferedAmount > this.limits.maxBufferedBytes) continue;
      text ??= JSON.stringify({ jsonrpc: '2.0', method: 'stats.tick', params: this.stats.snapshot() });
      s.sendText(text);
    }
  }

  /** Graceful stop: every console is told, sockets close, the port is released. */
  async close(): Promise<void> {
    if (this.batchTimer) clearInterval(this.batchTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    for (const u of this.unsubscribers) u();
    for (const s of this.sessions) s.close(CloseCode.GoingAway, 'shutdown', 'the relay is shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => {
      this.https.close(() => resolve());
      this.https.closeAllConnections?.();
      // connections still in their TLS handshake or before the upgrade are no HTTP connections yet
      for (const p of this.pending.values()) p.socket.destroy();
    });
    for (const s of this.sessions) s.ws.terminate();
    this.sessions.clear();
    this.subscribed.clear();
  }
}
