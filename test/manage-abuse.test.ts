/**
 * Bad input on the management port: non-JSON, JSON that is not JSON-RPC, unknown methods, huge frames, binary
 * frames, request floods, login brute force, a login that never comes, a console that stops reading, a token revoked
 * while its session streams. After each, the relay is up: the management port answers and SMTP accepts mail.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '../shared/protocol.ts';
import { sendMail } from './helpers/smtp-client.ts';
import { startManageRelay, WssClient, type ManageRelay } from './helpers/wss-client.ts';

let t: ManageRelay;
let nextIp = 0;

beforeAll(async () => {
  t = await startManageRelay(
    {},
    {
      relay: {
        manageLimits: { loginTimeoutMs: 400, stallTimeoutMs: 8000, maxBufferedBytes: 64 * 1024, subscriberBufferEvents: 300, floodCloseAfter: 300 },
      },
    },
  );
});
afterAll(async () => {
  await t?.stop();
});

/** The relay is still up: a fresh admin session answers and SMTP accepts a message. */
async function stillUp(): Promise<void> {
  const c = await t.admin();
  expect((await c.call('config.get', {})).revision).toBeGreaterThan(0);
  await c.close();
  const r = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: `127.0.0.${10 + (nextIp++ % 20)}` }); // the test DNS has PTRs for 127.0.0.1-40
  expect(r.data?.code).toBe(250);
}

describe('bad frames', () => {
  it('answers non-JSON with -32700 and keeps the session', async () => {
    const c = await t.admin();
    const n0 = c.frames.length;
    c.send('{"jsonrpc": "2.0", "id": 1, "method": ');
    c.send('hello relay');
    await c.waitFor(() => c.frames.length >= n0 + 2, 3000, 'two replies');
    expect(c.frames.slice(n0, n0 + 2)).toEqual([
      expect.objectContaining({ id: null, error: expect.objectContaining({ code: ErrorCode.ParseError }) }),
      expect.objectContaining({ id: null, error: expect.objectContaining({ code: ErrorCode.ParseError }) }),
    ]);
    expect((await c.call('config.history', { limit: 1 })).current).toBeGreaterThan(0);
    await stillUp();
  });

  it('answers JSON that is not JSON-RPC 2.0 with -32600', async () => {
    const c = await t.admin();
    const n0 = c.frames.length;
    for (const bad of [42, 'text', null, { hello: 1 }, { jsonrpc: '1.0', id: 5, method: 'config.get' }, { jsonrpc: '2.0', id: 6, method: 7 }, []]) {
      c.send(JSON.stringify(bad));
    }
    await c.waitFor(() => c.frames.length >= n0 + 7, 3000, 'seven replies');
    for (const f of c.frames.slice(n0, n0 + 7)) expect(f).toMatchObject({ jsonrpc: '2.0', error: { code: ErrorCode.InvalidRequest } });
    expect(c.frames.slice(n0).some((f) => (f as { id: unknown }).id === 5)).toBe(true);
    // params by position (an array) make a valid request whose params the method does not take: -32602
    expect(await c.request({ jsonrpc: '2.0', id: 8, method: 'config.get', params: [1] })).toMatchObject({ id: 8, error: { code: ErrorCode.InvalidParams } });
    await stillUp();
  });

  it('answers an unknown method with -32601, logged in or not', async () => {
    const anon = await t.connect();
    expect((await anon.callError('relay.shutdown', {})).code).toBe(ErrorCode.MethodNotFound);
    const c = await t.admin();
    const e = await c.callError('config.delete', {});
    expect(e.code).toBe(ErrorCode.MethodNotFound);
    expect(e.message).toContain('config.get');
    await stillUp();
  });

  it('closes the socket with 1009 on a frame over 1 MiB', async () => {
    const c = await t.admin();
    c.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'config.get', params: { pad: 'x'.repeat(1024 * 1024) } }));
    expect((await c.closed).code).toBe(CloseCode.MessageTooBig);
    // just under the limit is a normal (invalid-params) request
    const d = await t.admin();
    const r = await d.request({ jsonrpc: '2.0', method: 'config.get', params: { pad: 'x'.repeat(1024 * 1024 - 200) } });
    expect(r).toMatchObject({ error: { code: ErrorCode.InvalidParams } });
    await stillUp();
  });

  it('closes the socket with 1003 on a binary frame', async () => {
    const c = await t.admin();
    c.send(Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'config.get' })), true);
    const closed = await c.closed;
    expect(closed.code).toBe(CloseCode.UnsupportedData);
    expect(closed.reason).toContain('binary');
    await stillUp();
  });

  it('rate limits a flood of requests with 4029, then closes the connection', async () => {
    const c = await t.admin();
    const frame = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'events.unsubscribe', params: { subscriptionId: 'none' } });
    for (let i = 0; i < 1000; i++) c.send(frame);
    const closed = await c.closed;
    expect(closed.code).toBe(CloseCode.RateLimited);
    const limited = c.frames.filter((f) => (f as { error?: { code: number } }).error?.code === ErrorCode.RateLimited);
    expect(limited.length).toBeGreaterThan(0);
    // the wait until the token bucket (50 a second by default) holds one request again: more than 0, at most 1/50 s
    const wait = (limited[0] as { error: { data: { retryAfterMs: number } } }).error.data.retryAfterMs;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(1000 / t.relay.manage!.limits.requestsPerSecond);
    expect(c.of('session.closed')[0]).toMatchObject({ reason: 'flood' });
    await stillUp();
  });
});

describe('login', () => {
  it('closes a socket that does not log in within the login timeout', async () => {
    const c = await t.connect();
    const closed = await c.closed;
    expect(closed.code).toBe(CloseCode.LoginTimeout);
    expect(c.of('session.closed')).toEqual([expect.objectContaining({ reason: 'login-timeout' })]);
    // a request that is not auth.login does not extend it
    const d = await t.connect();
    expect((await d.callError('config.get', {})).code).toBe(ErrorCode.Unauthenticated);
    expect((await d.closed).code).toBe(CloseCode.LoginTimeout);
    await stillUp();
  });

  it('locks an IP out for five minutes after five failed logins in a minute (4029, socket closed); other IPs go on', async () => {
    const from = { localAddress: '127.0.0.66' };
    const c = await t.connect(from);
    for (let i = 0; i < 4; i++) expect((await c.callError('auth.login', { token: `rwt_guess${i}` })).code).toBe(ErrorCode.Unauthenticated);
    const fifth = await c.callError('auth.login', { token: 'rwt_guess4' });
    expect(fifth.code).toBe(ErrorCode.RateLimited);
    expect((fifth.data as { retryAfterMs: number }).retryAfterMs).toBe(5 * 60_000);
    expect((await c.closed).code).toBe(CloseCode.RateLimited);
    // a new connection from that IP is closed at once, even with the right token
    const again = await WssClient.connect(t.managePort, t.fingerprint, from);
    const closed = await again.closed;
    expect(closed.code).toBe(CloseCode.RateLimited);
    expect(again.of('session.closed')).toEqual([expect.objectContaining({ reason: 'locked-out' })]);
    // with how long the lockout lasts, so a console stays away that long
    const left = (again.of('session.closed')[0] as { retryAfterMs?: number }).retryAfterMs;
    expect(left).toBeGreaterThan(4 * 60_000);
    expect(left).toBeLessThanOrEqual(5 * 60_000);
    // another IP logs in fine
    const other = await WssClient.connect(t.managePort, t.fingerprint, { localAddress: '127.0.0.67' });
    expect((await other.login(t.adminToken)).role).toBe('admin');
    await other.close();
    await stillUp();
  });

  it('refuses a certificate that is not the pinned one before sending anything', async () => {
    const wrong = 'AA:'.repeat(31) + 'AA';
    await expect(WssClient.connect(t.managePort, wrong)).rejects.toThrow(/fingerprint/);
  });
});

describe('streams', () => {
  it('a token revoked (by the CLI, then SIGHUP) while its session streams is closed at once with 4003', async () => {
    const { client, name, token } = await t.clientWithRole('viewer', 'revoke-me');
    const sub = await client.call('events.subscribe', {});
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.40' });
    await client.waitFor(() => client.events(sub.subscriptionId).length > 0, 3000, 'streamed events');
    // the CLI revokes in tokens.json and signals the relay, which reloads
    const { TokenStore } = await import('../relay/store/tokens.ts');
    TokenStore.open(t.dir).revoke(name);
    const r = t.relay.reload();
    expect(r.ok).toBe(true);
    const closed = await client.closed;
    expect(closed.code).toBe(CloseCode.TokenRevoked);
    expect(client.of('session.closed')).toEqual([expect.objectContaining({ reason: 'revoked' })]);
    const after = await t.connect();
    expect((await after.callError('auth.login', { token })).code).toBe(ErrorCode.Unauthenticated);
    await stillUp();
  });

  it('an admin revoking its own token gets the reply, then the close', async () => {
    const { client, name } = await t.clientWithRole('admin', 'self-revoke');
    const r = await client.call('tokens.revoke', { name });
    expect(r.closedSessions).toBe(1);
    expect((await client.closed).code).toBe(CloseCode.TokenRevoked);
    await stillUp();
  });

  it('a console that stops reading: its events are dropped (counted in the next batch), it is closed after the stall timeout, SMTP never waits', async () => {
    const slow = await t.admin();
    const healthy = await t.admin();
    const s1 = await slow.call('events.subscribe', { filter: { kinds: ['delivered'] } });
    const s2 = await healthy.call('events.subscribe', { filter: { kinds: ['delivered'] } });
    const inFanout = t.relay.manage!.subscribedSessions;
    const socket = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.pause();
    // a burst of big events fills the paused console's socket, then its bounded buffer
    const pad = 'x'.repeat(4000);
    /** 3000 big events, 250 every 120 ms (a healthy console's buffer of 300 never overflows) */
    const burst = async (prefix: string) => {
      for (let r = 0; r < 12; r++) {
        for (let i = 0; i < 250; i++) t.relay.bus.emit({ kind: 'delivered', sessionId: null, ip: null, queueId: `${prefix}${r}-${i}`, to: ['a@b'], host: pad, tls: false, response: '250 ok' });
        await new Promise((res) => setTimeout(res, 120));
      }
    };
    await burst('Q');
    // meanwhile SMTP answers at once
    const started = Date.now();
    expect((await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.39' })).data?.code).toBe(250);
    expect(Date.now() - started).toBeLessThan(2000);
    // every event is accounted for on each console: received, or reported as dropped
    const dropped = (c: WssClient, sub: string) => c.of('events.batch').filter((b) => b.subscriptionId === sub).reduce((n, b) => n + (b.dropped ?? 0), 0);
    const seen = (c: WssClient, sub: string) => c.events(sub).length + dropped(c, sub);
    await healthy.waitFor(() => seen(healthy, s2.subscriptionId) === 3000, 10_000, 'all 3000 events on the healthy console');
    expect(healthy.events(s2.subscriptionId).length).toBeGreaterThan(1500);
    // resume briefly: the slow one's next batch says how many were dropped
    await new Promise((r) => setTimeout(r, 300));
    socket.resume();
    await slow.waitFor(() => seen(slow, s1.subscriptionId) === 3000, 10_000, 'every event received or reported dropped');
    expect(dropped(slow, s1.subscriptionId)).toBeGreaterThan(0);
    const stats = await healthy.call('stats.get', {});
    expect(stats.manage.droppedEvents).toBeGreaterThanOrEqual(dropped(slow, s1.subscriptionId));

    // now it stalls for good: closed after the stall timeout
    socket.pause();
    await burst('R');
    // the relay drops it (a paused socket cannot notice, so ask the relay)
    const before = (await healthy.call('stats.get', {})).manage.sessions;
    // keep the stream flowing until the relay gives up on it: how much the kernel's socket buffers absorb before
    // the relay's own buffer fills depends on timing, so a fixed burst is not always enough on a busy machine
    const until = Date.now() + 30_000;
    let more = 0;
    while ((await healthy.call('stats.get', {})).manage.sessions >= before) {
      if (Date.now() > until) throw new Error('the stalled console was not closed');
      for (let i = 0; i < 100; i++) t.relay.bus.emit({ kind: 'delivered', sessionId: null, ip: null, queueId: `S${more++}`, to: ['a@b'], host: pad, tls: false, response: '250 ok' });
      await new Promise((r) => setTimeout(r, 100));
    }
    // closed for stalling, it left the event fan-out at once; the healthy console is still in it
    expect(t.relay.manage!.subscribedSessions).toBe(inFanout - 1);
    socket.resume();
    await slow.closed;
    const last = healthy.events(s2.subscriptionId).length;
    t.relay.bus.emit({ kind: 'delivered', sessionId: null, ip: null, queueId: 'after-stall', to: ['a@b'], host: 'mx', tls: false, response: '250 ok' });
    await healthy.waitFor(() => healthy.events(s2.subscriptionId).slice(last).some((e) => e.kind === 'delivered' && e.queueId === 'after-stall'), 10_000, 'events after the stall close');
    await stillUp();
  }, 90_000);
});
