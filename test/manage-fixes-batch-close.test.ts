/**
 * A batch whose request ends the session (tokens.revoke of the caller's own token, a login that locks the IP out):
 * the session closes once the batch's reply frame is sent, and the requests after that one in the same batch must not
 * run with the token that is no longer valid. Each of them with an id is answered with the reason (4001 naming the
 * revoked token; 4029 with retryAfterMs for a lockout), nothing changes, and refused admin calls are audited as such.
 * Against a real relay and a real wss client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode, ErrorCode } from '../shared/protocol.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';

let t: ManageRelay;

beforeAll(async () => {
  t = await startManageRelay({ groups: { Trusted: [] } });
});
afterAll(async () => {
  await t?.stop();
});

type Reply = { id: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } };

/** Send a batch and resolve with its reply frame (the first array frame after sending). */
function batch(c: WssClient, requests: unknown[]): Promise<Reply[]> {
  const n0 = c.frames.length;
  c.send(JSON.stringify(requests));
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error('no reply frame to the batch')), 10_000);
    const poll = setInterval(() => {
      const frame = c.frames.slice(n0).find((f) => Array.isArray(f));
      if (frame) {
        clearTimeout(deadline);
        clearInterval(poll);
        resolve(frame as Reply[]);
      }
    }, 5);
  });
}

describe('a batch after its own token was revoked', () => {
  it('the later requests do not run: the config revision stays, each is refused naming the revoked token', async () => {
    const { client, name } = await t.clientWithRole('admin', 'batch-self-revoke');
    const admin = await t.admin();
    const before = await admin.call('config.get', {});
    const auditBefore = t.auditLines().length;

    const replies = await batch(client, [
      { jsonrpc: '2.0', id: 1, method: 'tokens.revoke', params: { name } },
      { jsonrpc: '2.0', id: 2, method: 'groups.addEntry', params: { group: 'Trusted', address: '192.0.2.77' } },
      { jsonrpc: '2.0', id: 3, method: 'config.update', params: { baseRevision: before.revision, config: { ...before.config, limits: { ...before.config.limits, messagesPerHour: { ...before.config.limits.messagesPerHour, max: 7 } } } } },
      { jsonrpc: '2.0', id: 4, method: 'tokens.create', params: { name: 'made-after-revoke', role: 'admin' } },
      // a notification: not run, and (as always) no reply
      { jsonrpc: '2.0', method: 'groups.addEntry', params: { group: 'Trusted', address: '192.0.2.78' } },
      { jsonrpc: '2.0', id: 5, method: 'config.get', params: {} },
    ]);
    expect((await client.closed).code).toBe(CloseCode.TokenRevoked);

    expect(replies.map((r) => r.id)).toEqual([1, 2, 3, 4, 5]);
    expect(replies[0]!.result).toEqual({ closedSessions: 1 });
    for (const r of replies.slice(1)) {
      expect(r.error?.code, JSON.stringify(r)).toBe(ErrorCode.Unauthenticated);
      expect(r.error?.message).toContain(`"${name}"`);
      expect(r.error?.message).toMatch(/revoked/);
    }

    // nothing ran: same revision, same config, no token made
    const after = await admin.call('config.get', {});
    expect(after.revision).toBe(before.revision);
    expect(after.config).toEqual(before.config);
    expect(t.relay.tokens.list().some((x) => x.name === 'made-after-revoke')).toBe(false);

    // the revoke is audited as done, the admin calls after it as refused
    const audit = t.auditLines().slice(auditBefore).filter((a) => a.by === name);
    expect(audit.map((a) => [a.method, a.ok])).toEqual([
      ['tokens.revoke', true],
      ['groups.addEntry', false],
      ['config.update', false],
      ['tokens.create', false],
      ['groups.addEntry', false],
    ]);
    for (const a of audit.slice(1)) expect((a.error as { code: number }).code).toBe(ErrorCode.Unauthenticated);
    expect(audit.some((a) => a.revision !== undefined && a.method !== 'tokens.revoke')).toBe(false);
  });
});

describe('a batch after a login that locked the IP out', () => {
  it('the later requests are refused with 4029 and how long the lockout lasts; a good login among them does not run', async () => {
    const c = await t.connect({ localAddress: '127.0.0.71' });
    const replies = await batch(c, [
      ...Array.from({ length: 5 }, (_, i) => ({ jsonrpc: '2.0', id: i + 1, method: 'auth.login', params: { token: `rwt_guess${i}` } })),
      { jsonrpc: '2.0', id: 6, method: 'config.get', params: {} },
      { jsonrpc: '2.0', id: 7, method: 'auth.login', params: { token: t.adminToken } },
      { jsonrpc: '2.0', id: 8, method: 'tokens.list', params: {} },
    ]);
    expect((await c.closed).code).toBe(CloseCode.RateLimited);
    expect(replies.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(replies.slice(0, 4).map((r) => r.error?.code)).toEqual(Array(4).fill(ErrorCode.Unauthenticated));
    // the fifth failure locks the IP out; everything after it says so, as login does
    for (const r of replies.slice(4)) {
      expect(r.error?.code, JSON.stringify(r)).toBe(ErrorCode.RateLimited);
      expect(r.error?.message).toMatch(/too many failed logins from 127\.0\.0\.71/);
      const left = (r.error?.data as { retryAfterMs: number }).retryAfterMs;
      expect(left).toBeGreaterThan(4 * 60_000);
      expect(left).toBeLessThanOrEqual(5 * 60_000);
    }
    expect(replies.some((r) => r.result !== undefined)).toBe(false);
  });
});
