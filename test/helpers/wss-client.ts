/**
 * A real management client for tests: `ws` over TLS to a relay started in the test. It pins the certificate: the
 * TLS socket is checked against the expected SHA-256 fingerprint when the handshake completes, and the connection
 * is refused (nothing more is sent, no token ever) when it does not match. Every result is validated against the
 * method's result schema in shared/protocol.ts, so the tests also check the relay keeps its contract.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach } from 'vitest';
import { WebSocket } from 'ws';
import {
  Methods,
  Notifications,
  RpcError,
  type MethodName,
  type NotificationName,
  type NotificationParams,
  type Params,
  type Result,
} from '../../shared/protocol.ts';
import type { ConfigInput } from '../../shared/config.ts';
import { startTestRelay, type FakeClock, type TestRelay } from './relay-harness.ts';
import type { RelayOptions } from '../../relay/relay.ts';
import type { Zone } from './dns-server.ts';
import { waitFor } from './wait.ts';

export interface Notice {
  method: string;
  params: unknown;
}

export class WssClient {
  readonly notifications: Notice[] = [];
  /** every text frame received, parsed */
  readonly frames: unknown[] = [];
  private nextId = 1;
  private readonly pending = new Map<number | string, (reply: Record<string, unknown>) => void>();
  private noticeWaiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  closeInfo: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.noticeWaiters.splice(0)) w();
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const msg = JSON.parse(data.toString()) as unknown;
      this.frames.push(msg);
      const list = Array.isArray(msg) ? msg : [msg];
      for (const m of list as Record<string, unknown>[]) {
        if ('id' in m && ('result' in m || 'error' in m)) {
          const w = this.pending.get(m.id as number);
          if (w) {
            this.pending.delete(m.id as number);
            w(m);
          }
        } else if (typeof m.method === 'string') {
          const schema = Notifications[m.method as NotificationName];
          if (schema) schema.parse(m.params);
          this.notifications.push({ method: m.method, params: m.params });
          for (const w of this.noticeWaiters.splice(0)) w();
        }
      }
    });
  }

  /** Connect to wss://host:port, refusing a certificate whose SHA-256 fingerprint is not `fingerprint256`. */
  static connect(port: number, fingerprint256: string, opts: { host?: string; localAddress?: string; timeoutMs?: number } = {}): Promise<WssClient> {
    const host = opts.host ?? '127.0.0.1';
    return new Promise((resolve, reject) => {
      let pinned = false;
      const ws = new WebSocket(`wss://${host}:${port}/`, {
        rejectUnauthorized: false,
        localAddress: opts.localAddress,
        handshakeTimeout: opts.timeoutMs ?? 5000,
        maxPayload: 256 * 1024 * 1024,
        createConnection: ((options: tls.ConnectionOptions) => {
          const socket = tls.connect({ ...options, rejectUnauthorized: false });
          socket.once('secureConnect', () => {
            const got = socket.getPeerX509Certificate()?.fingerprint256;
            if (got !== fingerprint256) {
              socket.destroy(new Error(`certificate fingerprint ${got} is not the pinned ${fingerprint256}`));
              return;
            }
            pinned = true;
          });
          return socket;
        }) as never,
      });
      const client = new WssClient(ws);
      ws.once('open', () => {
        if (!pinned) {
          ws.terminate();
          reject(new Error('opened without a pinned certificate'));
          return;
        }
        resolve(client);
      });
      ws.once('error', (err) => reject(err));
    });
  }

  /** Send a request object as is; resolves with the raw reply (result or error). */
  request(message: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const id = (message.id as number | string | undefined) ?? this.nextId++;
    const frame = { ...message, id };
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${JSON.stringify(frame).slice(0, 200)} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.ws.send(JSON.stringify(frame));
    });
  }

  /** A typed call; rejects with RpcError on an error reply. The result is validated against the protocol. */
  async call<M extends MethodName>(method: M, params: Params<M>, timeoutMs?: number): Promise<Result<M>> {
    const r = await this.request({ jsonrpc: '2.0', method, params }, timeoutMs);
    if ('error' in r) {
      const e = r.error as { code: number; message: string; data?: unknown };
      throw new RpcError(e.code, e.message, e.data);
    }
    return Methods[method].result.parse(r.result) as Result<M>;
  }

  /** The error a call fails with (fails the test when it succeeds). */
  async callError(method: string, params: unknown): Promise<RpcError> {
    const r = await this.request({ jsonrpc: '2.0', method, params: params as Record<string, unknown> });
    if (!('error' in r)) throw new Error(`${method} succeeded: ${JSON.stringify(r.result).slice(0, 300)}`);
    const e = r.error as { code: number; message: string; data?: unknown };
    return new RpcError(e.code, e.message, e.data);
  }

  login(token: string): Promise<Result<'auth.login'>> {
    return this.call('auth.login', { token });
  }

  send(raw: string | Buffer, binary = false): void {
    this.ws.send(raw, { binary });
  }

  of<N extends NotificationName>(method: N): NotificationParams<N>[] {
    return this.notifications.filter((n) => n.method === method).map((n) => n.params as NotificationParams<N>);
  }

  /** Wait until pred holds over the notifications (bounded). */
  async waitFor(pred: () => boolean, timeoutMs = 5000, what = 'a notification'): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!pred()) {
      if (this.closeInfo) {
        if (pred()) return;
        throw new Error(`the socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}`);
      }
      const left = until - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.noticeWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Events received on a subscription so far. */
  events(subscriptionId?: string): NotificationParams<'events.batch'>['events'] {
    return this.of('events.batch')
      .filter((b) => subscriptionId === undefined || b.subscriptionId === subscriptionId)
      .flatMap((b) => b.events);
  }

  async close(): Promise<void> {
    if (this.closeInfo) return;
    this.ws.close();
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 1000))]);
    this.ws.terminate();
  }
}

export interface ManageRelay extends TestRelay {
  managePort: number;
  fingerprint: string;
  adminToken: string;
  /** a logged-in admin client */
  admin(): Promise<WssClient>;
  /** a new token of this role, logged in */
  clientWithRole(role: 'admin' | 'viewer', name?: string): Promise<{ client: WssClient; token: string; name: string }>;
  connect(opts?: { localAddress?: string }): Promise<WssClient>;
  auditLines(): Record<string, unknown>[];
}

/** A real relay (SMTP + wss on free loopback ports, fake clock) with helpers for management clients. */
export async function startManageRelay(
  config: ConfigInput = {},
  opts: { zone?: Zone; clock?: FakeClock; relay?: Partial<RelayOptions> } = {},
): Promise<ManageRelay> {
  const t = await startTestRelay(config, { ...opts, relay: { history: { flushMs: 20 }, ...opts.relay } });
  const clients: WssClient[] = [];
  const managePort = t.relay.manageAddress.port;
  const fingerprint = t.relay.identity.fingerprint256;
  const adminToken = fs.readFileSync(path.join(t.dir, 'admin-token'), 'utf8').trim();
  let n = 0;
  const connect = async (o: { localAddress?: string } = {}) => {
    const c = await WssClient.connect(managePort, fingerprint, o);
    clients.push(c);
    return c;
  };
  const stop = t.stop;
  return {
    ...t,
    managePort,
    fingerprint,
    adminToken,
    connect,
    async admin() {
      const c = await connect();
      await c.login(adminToken);
      return c;
    },
    async clientWithRole(role, name) {
      const tokenName = name ?? `${role}-${++n}`;
      const token = t.relay.tokens.create(tokenName, role);
      const client = await connect();
      await client.login(token);
      return { client, token, name: tokenName };
    },
    auditLines() {
      const file = path.join(t.dir, 'audit.jsonl');
      if (!fs.existsSync(file)) return [];
      return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    async stop() {
      await Promise.all(clients.map((c) => c.close()));
      await stop();
    },
  };
}

/**
 * For files whose tests each start their own relay: call once at the top of the file, then
 * `const t = await startRelay(config)` inside a test; every relay started that way is stopped after its test.
 */
export function manageRelayPerTest(): (...args: Parameters<typeof startManageRelay>) => Promise<ManageRelay> {
  const started: ManageRelay[] = [];
  afterEach(async () => {
    for (const r of started.splice(0)) await r.stop();
  });
  return async (...args) => {
    const r = await startManageRelay(...args);
    started.push(r);
    return r;
  };
}

/**
 * Records `sessions` made-up SMTP sessions through the relay's bus (connect, then a helo and a recipient refusal when
 * asked, then disconnect; session ids s0, s1, ...; IPs 192.0.2.0-249), moving the fake clock one millisecond every
 * `advanceEvery` sessions (ties on `at` across pages) if given, and waits until the history has stored them all.
 */
export async function recordSessions(
  t: ManageRelay,
  sessions: number,
  opts: { helo?: boolean; rejected?: boolean; advanceEvery?: number } = {},
): Promise<void> {
  const before = t.relay.history.storedEvents;
  let n = 0;
  for (let i = 0; i < sessions; i++) {
    const ip = `192.0.2.${i % 250}`;
    t.relay.bus.emit({ kind: 'connect', sessionId: `s${i}`, ip, port: 1000 + (i % 5000) });
    if (opts.helo) t.relay.bus.emit({ kind: 'helo', sessionId: `s${i}`, ip, name: `h${i}.example` });
    if (opts.rejected) {
      t.relay.bus.emit({ kind: 'rejected', sessionId: `s${i}`, ip, stage: 'rcpt', rule: 'recipient.unknown', code: 550, text: 'no such user', enforced: true });
    }
    t.relay.bus.emit({ kind: 'disconnect', sessionId: `s${i}`, ip, messages: 0 });
    n += 2 + (opts.helo ? 1 : 0) + (opts.rejected ? 1 : 0);
    if (opts.advanceEvery && i % opts.advanceEvery === 0) t.clock.advance(1);
  }
  await waitFor(() => t.relay.history.storedEvents >= before + n, 'the events to be stored', 20_000);
}
