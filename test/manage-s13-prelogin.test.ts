/**
 * Before login a management connection must cost the relay almost nothing (hostile-client tryout s13, findings 2 and
 * 3): frames of a few KiB, every frame counted by the rate limit before it is parsed (empty and oversized batches and
 * frames that are not JSON too), and a budget of sessions of its own, per address and overall, apart from the
 * logged-in sessions, so sockets that never log in cannot keep an admin out. Real wss clients on loopback.
 */
import { describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '../shared/protocol.ts';
import { manageRelayPerTest, WssClient } from './helpers/wss-client.ts';

const startRelay = manageRelayPerTest();

const codeOf = (f: unknown) => (f as { error?: { code: number } }).error?.code;

describe('frames before login', () => {
  it('a frame over a few KiB before auth.login closes the socket (1009); once logged in, big frames are served', async () => {
    const t = await startRelay();
    const anon = await t.connect();
    // a 3 KiB request is read and answered (not logged in)
    expect(await anon.request({ jsonrpc: '2.0', method: 'config.get', params: { pad: 'x'.repeat(3000) } })).toMatchObject({ error: { code: ErrorCode.Unauthenticated } });
    // 5 KiB is refused unread
    anon.send(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'auth.login', params: { token: 'x'.repeat(5000) } }));
    expect((await anon.closed).code).toBe(CloseCode.MessageTooBig);
    expect(anon.frames.some((f) => (f as { id?: unknown }).id === 9)).toBe(false);
    // a logged-in admin may send up to the documented 1 MiB
    const admin = await t.admin();
    expect(await admin.request({ jsonrpc: '2.0', method: 'config.get', params: { pad: 'x'.repeat(100_000) } })).toMatchObject({ error: { code: ErrorCode.InvalidParams } });
  });

  it('empty batches, oversized batches and frames that are not JSON are counted by the rate limit: a flood of them is refused, then closed', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { floodCloseAfter: 100, loginTimeoutMs: 20_000 } } });
    const oversized = JSON.stringify(Array.from({ length: 51 }, () => ({})));
    for (const frame of ['[]', oversized, '{"jsonrpc":']) {
      const c = await t.connect();
      for (let i = 0; i < 600; i++) c.send(frame);
      const closed = await Promise.race([c.closed, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
      expect(closed, `${frame.slice(0, 10)} x600 closes the connection`).toMatchObject({ code: CloseCode.RateLimited });
      expect(c.frames.filter((f) => codeOf(f) === ErrorCode.RateLimited).length).toBeGreaterThan(0);
      expect(c.of('session.closed')).toEqual([expect.objectContaining({ reason: 'flood' })]);
      // the burst (200) was served, the rest refused: far fewer than 600 were parsed and answered as such
      expect(c.frames.filter((f) => codeOf(f) === ErrorCode.InvalidRequest || codeOf(f) === ErrorCode.ParseError).length).toBeLessThanOrEqual(t.relay.manage!.limits.requestBurst + 5);
    }
  });
});

describe('sessions that have not logged in have a budget of their own', () => {
  it('one address holds at most maxAnonymousSessionsPerIp of them; the next is closed (4029) saying why', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { loginTimeoutMs: 20_000 } } });
    const from = { localAddress: '127.0.0.71' };
    const per = t.relay.manage!.limits.maxAnonymousSessionsPerIp;
    const held: WssClient[] = [];
    for (let i = 0; i < per; i++) held.push(await t.connect(from));
    const extra = await t.connect(from);
    const closed = await extra.closed;
    expect(closed.code).toBe(CloseCode.RateLimited);
    expect(extra.of('session.closed')[0]).toMatchObject({ reason: 'flood', message: expect.stringContaining('have not logged in') });
    // the ones held are still open, and one of them may log in (and leaves the budget)
    expect(held.every((c) => c.closeInfo === null)).toBe(true);
    expect((await held[0]!.login(t.adminToken)).role).toBe('admin');
    const again = await t.connect(from);
    expect((await again.login(t.adminToken)).role).toBe('admin');
  });

  it('sockets that never log in cannot keep an admin out: the admin logs in, the oldest of them makes room', async () => {
    const t = await startRelay({}, { relay: { manageLimits: { loginTimeoutMs: 20_000, maxSessions: 3, maxAnonymousSessions: 6 } } });
    const idle: WssClient[] = [];
    // 12 sockets from 4 addresses (3 each, under the per-address budget) that never log in
    for (let i = 0; i < 12; i++) idle.push(await t.connect({ localAddress: `127.0.0.${72 + (i % 4)}` }));
    const admin = await t.connect({ localAddress: '127.0.0.80' });
    expect((await admin.login(t.adminToken)).role).toBe('admin');
    expect((await admin.call('config.get', {})).revision).toBeGreaterThan(0);
    // at most 6 not logged in were kept: the oldest were closed to make room, each told why
    await new Promise((r) => setTimeout(r, 200));
    const closed = idle.filter((c) => c.closeInfo !== null);
    expect(closed.length).toBeGreaterThanOrEqual(6);
    expect(closed[0]!.of('session.closed')[0]).toMatchObject({ reason: 'flood', message: expect.stringContaining('make room') });
    expect(closed[0]).toBe(idle[0]);
    // the logged-in sessions have their own cap (3): the 4th login is refused with 4029 and the socket closed
    await t.admin();
    await t.admin();
    const fourth = await t.connect({ localAddress: '127.0.0.81' });
    const e = await fourth.callError('auth.login', { token: t.adminToken });
    expect(e.code).toBe(ErrorCode.RateLimited);
    expect(e.message).toContain('too many management sessions (limit 3)');
    expect((await fourth.closed).code).toBe(CloseCode.RateLimited);
  });
});
