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
 * - Requests are rate limited per connection (token bucket); a connection that keeps flooding is closed (4029).
 * - A revoked token's sessions close at once (TokenStore.onRevoke, also after SIGHUP for a CLI revoke).
 */
import https from 'node:https';
import type net from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { normalizeIp } from '../../shared/ip.ts';
import {
  BATCH_INTERVAL_MS,
  CloseCode,
  ErrorCode,
  JsonRpcRequest,
  LOGIN_TIMEOUT_MS,
  MAX_FRAME_BYTES,
  Methods,
  RpcError,
  STATS_TICK_MS,
  isMethodName,
  toIssues,
  type MethodName,
  type RequestId,
} from '../../shared/protocol.ts';
import type { RelayEvent } from '../../shared/events.ts';
import { configErrorMap } from '../../shared/config.ts';
import { auditParams } from '../store/audit.ts';
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
  /** a socket with more than this waiting to be sent gets no more batches or ticks until it drains */
  maxBufferedBytes: number;
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
  maxSessions: number;
  maxBatchRequests: number;
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
  stallTimeoutMs: 30_000,
  batchIntervalMs: BATCH_INTERVAL_MS,
  statsTickMs: STATS_TICK_MS,
  maxBatchEvents: 5000,
  maxSubscriptionsPerSession: 8,
  backlogMax: 10_000,
  backlogScanMax: 200_000,
  maxSessions: 256,
  maxBatchRequests: 50,
};

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

function idOf(raw: unknown): RequestId {
  if (raw && typeof raw === 'object' && 'id' in raw) {
    const id = (raw as { id: unknown }).id;
    if (typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id)) || id === null) return id as RequestId;
  }
  return null;
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

    this.https = https.createServer({ cert: opts.identity.cert, key: opts.identity.key, minVersion: 'TLSv1.2' }, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket' });
      res.end('This is the Relay Warden management port: connect with a WebSocket (wss://) and speak JSON-RPC 2.0.\n');
    });
    this.https.on('tlsClientError', () => {
      // a client that does not trust the certificate, or a scanner: nothing to do
    });
    this.wss = new WebSocketServer({ server: this.https, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false, clientTracking: false });
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

  private onConnection(ws: WebSocket, socket: net.Socket): void {
    const ip = normalizeIp(socket.remoteAddress ?? '') ?? socket.remoteAddress ?? 'unknown';
    const session = new Session(`m${this.nextSession++}`, ws, ip, new RateLimit(this.limits.requestsPerSecond, this.limits.requestBurst, this.wall));
    this.sessions.add(session);
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
    if (this.sessions.size > this.limits.maxSessions) {
      session.close(CloseCode.RateLimited, 'flood', `the relay has too many management sessions (limit ${this.limits.maxSessions}); try again later`);
      return;
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
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      if (this.limited(s)) return this.sendLimited(s, null);
      s.send(errorReply(null, ErrorCode.ParseError, `the frame is not JSON: ${(err as Error).message}`));
      return;
    }
    if (Array.isArray(msg)) {
      if (msg.length === 0) return s.send(errorReply(null, ErrorCode.InvalidRequest, 'an empty batch'));
      if (msg.length > this.limits.maxBatchRequests) {
        return s.send(errorReply(null, ErrorCode.InvalidRequest, `a batch of ${msg.length} requests; at most ${this.limits.maxBatchRequests}`));
      }
      const replies: Reply[] = [];
      const after: (() => void)[] = [];
      for (const m of msg) {
        const r = await this.handle(s, m, after);
        if (r) replies.push(r);
      }
      if (replies.length) s.send(replies);
      for (const f of after) f();
      this.afterReply(s);
      return;
    }
    const after: (() => void)[] = [];
    const r = await this.handle(s, msg, after);
    if (r) s.send(r);
    for (const f of after) f();
    this.afterReply(s);
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

  private sendLimited(s: Session, id: RequestId): void {
    if (s.closed) return;
    s.send(errorReply(id, ErrorCode.RateLimited, `too many requests on this connection (at most ${this.limits.requestsPerSecond} a second); slow down`, {
      retryAfterMs: s.rate.retryAfterMs(),
    }));
  }

  private afterReply(s: Session): void {
    const c = s.closeAfterReply;
    if (c && !s.closed) s.close(c.code, c.why, c.message, c.retryAfterMs);
  }

  /**
   * One request: a reply, or null for a notification (a request without id). `after` collects what the handler asks
   * to run once its reply has been sent (ctx.afterReply): the caller runs it after sending the frame that holds it.
   */
  private async handle(s: Session, raw: unknown, after: (() => void)[]): Promise<Reply | null> {
    if (s.closed) return null;
    const id = idOf(raw);
    // an earlier request of this batch ended the session (it revoked its own token, or its login locked the IP out):
    // the session closes once the batch's replies are sent, and nothing after that request runs
    if (s.closeAfterReply) return this.refuseAfterClose(s, raw, id);
    if (this.limited(s)) {
      if (!s.closed) this.sendLimited(s, id);
      return null;
    }
    const env = JsonRpcRequest.safeParse(raw);
    if (!env.success) {
      return errorReply(id, ErrorCode.InvalidRequest, 'not a JSON-RPC 2.0 request: expected {"jsonrpc":"2.0","id":...,"method":"...","params":{...}}', {
        issues: toIssues(env.error),
      });
    }
    const req = env.data;
    const notification = req.id === undefined;
    const reply = (r: Reply) => (notification ? null : r);
    if (!isMethodName(req.method)) {
      return reply(errorReply(id, ErrorCode.MethodNotFound, `unknown method "${req.method}"; the methods are: ${Object.keys(Methods).join(', ')}`));
    }
    const method: MethodName = req.method;
    const spec = Methods[method];
    if (method === 'auth.login') return reply(this.login(s, id, req.params));
    if (!s.auth) return reply(errorReply(id, ErrorCode.Unauthenticated, 'not logged in: the first request must be auth.login {token}'));
    if (spec.access === 'admin' && s.auth.role !== 'admin') {
      return reply(errorReply(id, ErrorCode.Forbidden, `${method} needs an admin token; "${s.auth.name}" is a ${s.auth.role} token`));
    }
    // in the words the config file's errors use ("must be a whole number; it is 1.5"), not zod's defaults
    const parsed = spec.params.safeParse(req.params ?? {}, { error: configErrorMap });
    if (!parsed.success) {
      const issues = toIssues(parsed.error, spec.params);
      const first = issues[0];
      const where = first ? `${first.path.join('.') || 'params'}: ${first.message}` : 'params';
      const r = errorReply(id, ErrorCode.InvalidParams, `invalid params for ${method}: ${where}`, { issues });
      if (spec.access === 'admin') this.audit(s, method, req.params, null, r);
      return reply(r);
    }
    const ctx: CallContext = { session: s, afterReply: after };
    const handler = this.handlers[method] as unknown as (p: unknown, c: CallContext) => unknown;
    let out: Reply;
    try {
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
    if (spec.access === 'admin') this.audit(s, method, req.params, ctx, out);
    return reply(out);
  }

  /**
   * A request that comes after one that ended its session, in the same batch: it is not run. One with an id is told
   * why, as the session's other requests would be from now on: the revoked token (4001, naming it) or the lockout
   * (4029 with retryAfterMs, as auth.login says it); a notification gets no reply. An admin call by an admin token,
   * notification or not, is audited as refused, as every admin call is.
   */
  private refuseAfterClose(s: Session, raw: unknown, id: RequestId): Reply | null {
    const c = s.closeAfterReply!;
    const env = JsonRpcRequest.safeParse(raw);
    const method = env.success && isMethodName(env.data.method) ? env.data.method : null;
    const what = method ?? 'this request';
    let r: Reply;
    if (c.why === 'locked-out') {
      const left = this.guard.lockedFor(s.ip) || (c.retryAfterMs ?? 0);
      r = errorReply(id, ErrorCode.RateLimited, `too many failed logins from ${s.ip}; try again in ${Math.ceil(left / 1000)} s (${what} was not run)`, {
        retryAfterMs: Math.max(0, Math.ceil(left)),
      });
    } else {
      r = errorReply(id, ErrorCode.Unauthenticated, `${c.message} by an earlier request of this batch; ${what} was not run`);
    }
    if (method && Methods[method].access === 'admin' && s.auth?.role === 'admin') this.audit(s, method, env.success ? env.data.params : undefined, null, r);
    return env.success && env.data.id === undefined ? null : r;
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

  private login(s: Session, id: RequestId, params: unknown): Reply {
    if (s.auth) return errorReply(id, ErrorCode.InvalidRequest, `already logged in as "${s.auth.name}"`);
    const locked = this.guard.lockedFor(s.ip);
    if (locked > 0) {
      s.closeAfterReply = { code: CloseCode.RateLimited, why: 'locked-out', message: `too many failed logins from ${s.ip}`, retryAfterMs: locked };
      return errorReply(id, ErrorCode.RateLimited, `too many failed logins from ${s.ip}; try again in ${Math.ceil(locked / 1000)} s`, { retryAfterMs: locked });
    }
    const p = Methods['auth.login'].params.safeParse(params ?? {});
    if (!p.success) return errorReply(id, ErrorCode.InvalidParams, 'invalid params for auth.login: expected {token}', { issues: toIssues(p.error) });
    const who = this.opts.tokens.verify(p.data.token);
    if (!who) {
      const lockout = this.guard.fail(s.ip);
      if (lockout > 0) {
        this.log(`manage: ${s.ip} locked out for ${lockout / 60_000} min after ${this.limits.maxLoginFailures} failed logins`);
        s.closeAfterReply = { code: CloseCode.RateLimited, why: 'locked-out', message: `too many failed logins from ${s.ip}`, retryAfterMs: lockout };
        return errorReply(id, ErrorCode.RateLimited, `too many failed logins from ${s.ip}; locked out for ${lockout / 60_000} minutes`, { retryAfterMs: lockout });
      }
      return errorReply(id, ErrorCode.Unauthenticated, 'wrong or revoked token');
    }
    s.auth = { name: who.name, role: who.role };
    if (s.loginTimer) clearTimeout(s.loginTimer);
    s.loginTimer = null;
    return { jsonrpc: '2.0', id, result: loginInfo(this.deps, who.name, who.role) };
  }

  private audit(s: Session, method: string, params: unknown, ctx: CallContext | null, out: Reply): void {
    try {
      const err = 'error' in out ? { code: out.error.code, message: out.error.message } : undefined;
      this.opts.audit.append({
        time: new Date(this.opts.now()).toISOString(),
        at: this.opts.now(),
        by: s.auth!.name,
        role: s.auth!.role,
        remoteIp: s.ip,
        method,
        params: auditParams(params),
        ok: err === undefined,
        ...(err ? { error: err } : {}),
        ...(ctx?.change ? { revision: ctx.change.revision, changes: ctx.change.changes } : {}),
      });
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
      s.close(CloseCode.Stalled, 'stalled', `this console did not read its events for ${Math.round(this.limits.stallTimeoutMs / 1000)} s`);
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
        const frame = sub.takeBatch(this.limits.maxBatchEvents);
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
    });
    for (const s of this.sessions) s.ws.terminate();
    this.sessions.clear();
    this.subscribed.clear();
  }
}
