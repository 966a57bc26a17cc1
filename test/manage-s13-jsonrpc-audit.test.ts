/**
 * JSON-RPC details and the audit trail (hostile-client tryout s13, findings 6, 9 and 13): every request with an id
 * gets a reply, even when its params check throws (-32603); params by position are -32602; an id that is not a valid
 * one (a safe integer, or text) is answered with id null; auth.login's param errors use the words of every other
 * method's; the 9th events.subscribe is a limit (-32600), not a rate; a viewer's refused admin call and each failed
 * auth.login are audited (with the address, never the token).
 */
import { describe, expect, it, vi } from 'vitest';
import { ErrorCode, Methods } from '../shared/protocol.ts';
import { manageRelayPerTest } from './helpers/wss-client.ts';

const startRelay = manageRelayPerTest();

describe('every request with an id gets a reply', () => {
  it('a params check that throws is answered -32603 (and logged), and the session goes on', async () => {
    const lines: string[] = [];
    const t = await startRelay({}, { relay: { log: (l: string) => lines.push(l) } });
    const admin = await t.admin();
    const spy = vi.spyOn(Methods['config.history'].params, 'safeParse').mockImplementation(() => {
      throw new TypeError('a refinement that throws');
    });
    try {
      const r = await admin.request({ jsonrpc: '2.0', method: 'config.history', params: { limit: 1 } }, 3000);
      expect(r).toMatchObject({ error: { code: ErrorCode.InternalError, message: expect.stringContaining('a refinement that throws') } });
    } finally {
      spy.mockRestore();
    }
    expect(lines.some((l) => l.includes('config.history failed'))).toBe(true);
    expect((await admin.call('config.history', { limit: 1 })).current).toBeGreaterThan(0);
  });
});

describe('JSON-RPC details', () => {
  it('params by position are -32602 naming the method; auth.login too', async () => {
    const t = await startRelay();
    const anon = await t.connect();
    const login = await anon.request({ jsonrpc: '2.0', method: 'auth.login', params: [t.adminToken] });
    expect(login).toMatchObject({ error: { code: ErrorCode.InvalidParams, message: expect.stringContaining('invalid params for auth.login') } });
    const admin = await t.admin();
    const r = await admin.request({ jsonrpc: '2.0', method: 'config.get', params: [] });
    expect(r).toMatchObject({ error: { code: ErrorCode.InvalidParams, message: expect.stringMatching(/^invalid params for config.get: params: .*array/) } });
  });

  it('an id that is not a safe integer (nor text of at most 200) is answered with id null', async () => {
    const t = await startRelay();
    const admin = await t.admin();
    for (const id of ['1e300', '9007199254740992', '123456789012345678901234567890', JSON.stringify('x'.repeat(201))]) {
      const n0 = admin.frames.length;
      admin.send(`{"jsonrpc":"2.0","id":${id},"method":"config.get","params":{}}`);
      await admin.waitFor(() => admin.frames.length > n0, 3000, `the reply to id ${id.slice(0, 20)}`);
      expect(admin.frames[n0]).toMatchObject({ id: null, error: { code: ErrorCode.InvalidRequest } });
    }
  });

  it('auth.login param errors say what the token must be, in the words every other method uses', async () => {
    const t = await startRelay();
    const anon = await t.connect();
    const e = await anon.callError('auth.login', { token: 5 });
    expect(e.code).toBe(ErrorCode.InvalidParams);
    // the token is a secret: said only by its kind
    expect(e.message).toBe('invalid params for auth.login: token: must be text in quotes; it is a number');
    const missing = await anon.callError('auth.login', {});
    expect(missing.message).toMatch(/^invalid params for auth.login: token: /);
    expect(missing.message).not.toContain('Invalid input');
  });

  it('the 9th events.subscribe is refused as a limit (-32600), not a rate to wait for', async () => {
    const t = await startRelay();
    const { client } = await t.clientWithRole('viewer');
    for (let i = 0; i < t.relay.manage!.limits.maxSubscriptionsPerSession; i++) await client.call('events.subscribe', {});
    const e = await client.callError('events.subscribe', {});
    expect(e.code).toBe(ErrorCode.InvalidRequest);
    expect(e.message).toContain('unsubscribe one first');
    expect(e.data).toBeUndefined();
  });
});

describe('audit', () => {
  it('a viewer’s admin calls, refused, are audited with the viewer’s name and address', async () => {
    const t = await startRelay();
    const { client, name } = await t.clientWithRole('viewer', 'viewer1');
    expect((await client.callError('tokens.create', { name: 'mine', role: 'admin' })).code).toBe(ErrorCode.Forbidden);
    expect((await client.callError('config.revert', { revision: 1 })).code).toBe(ErrorCode.Forbidden);
    const lines = t.auditLines().filter((l) => l.by === name);
    expect(lines.map((l) => l.method)).toEqual(['tokens.create', 'config.revert']);
    expect(lines[0]).toMatchObject({ role: 'viewer', remoteIp: '127.0.0.1', ok: false, error: { code: ErrorCode.Forbidden } });
  });

  it('a token that loops on admin calls it may not make is audited at most 60 times a minute (each line is fdatasynced)', async () => {
    const t = await startRelay();
    const { client, name } = await t.clientWithRole('viewer', 'looper');
    // not across a minute boundary (the budget is per wall-clock minute)
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 100));
    const replies = await Promise.all(Array.from({ length: 80 }, () => client.request({ jsonrpc: '2.0', method: 'tokens.list', params: {} })));
    expect(replies.every((r) => (r.error as { code: number }).code === ErrorCode.Forbidden)).toBe(true);
    expect(t.auditLines().filter((l) => l.by === name)).toHaveLength(60);
  }, 30_000);

  it('each failed auth.login is audited with the address, never the token', async () => {
    const t = await startRelay();
    const c = await t.connect({ localAddress: '127.0.0.90' });
    for (let i = 0; i < 3; i++) expect((await c.callError('auth.login', { token: `rwt_guess${i}` })).code).toBe(ErrorCode.Unauthenticated);
    const lines = t.auditLines().filter((l) => l.method === 'auth.login');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ remoteIp: '127.0.0.90', ok: false, error: { code: ErrorCode.Unauthenticated } });
    expect(JSON.stringify(t.auditLines())).not.toContain('rwt_guess');
    // a viewer sees them in audit.list
    const { client } = await t.clientWithRole('viewer');
    const listed = await client.call('audit.list', { limit: 10 });
    expect(listed.entries.filter((e) => e.method === 'auth.login')).toHaveLength(3);
  });
});
