/**
 * Every management method against a real relay over wss: success, invalid params (-32602 with the zod issues),
 * unauthenticated (4001), a viewer on an admin method (4003), and revision conflicts (4009).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, METHOD_NAMES, Methods, type MethodName } from '../shared/protocol.ts';
import { sendMail } from './helpers/smtp-client.ts';
import { waitFor } from './helpers/wait.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';

let t: ManageRelay;
let admin: WssClient;
let viewer: WssClient;

beforeAll(async () => {
  t = await startManageRelay({
    limits: { messagesPerHour: { max: 2 } },
    groups: { Trusted: [{ address: '192.0.2.0/24', comment: 'office' }], Partners: [] },
  });
  admin = await t.admin();
  viewer = (await t.clientWithRole('viewer', 'watcher')).client;
});
afterAll(async () => {
  await t?.stop();
});

/** Params that fail each method's schema (every method with params). */
const BAD_PARAMS: Partial<Record<MethodName, Record<string, unknown>>> = {
  'config.get': { revision: 'latest' },
  'config.update': { baseRevision: 1, config: { limits: { messagesPerHour: { max: -5 } } } },
  'config.history': { limit: 0 },
  'config.revert': { revision: 'one' },
  'groups.addEntry': { group: 'Trusted' },
  'groups.removeEntry': { address: '192.0.2.1' },
  'clients.list': { limit: 'all' },
  'clients.trust': { ip: 5 },
  'clients.unblock': {},
  'events.subscribe': { filter: { kinds: ['nonsense'] } },
  'events.unsubscribe': {},
  'events.query': { limit: 1_000_000 },
  'stats.get': { extra: true },
  'queue.list': { offset: -1 },
  'queue.retry': {},
  'queue.delete': { id: 7 },
  'tokens.list': { all: true },
  'tokens.create': { name: 'bad name!', role: 'root' },
  'tokens.revoke': {},
  'audit.list': { limit: 5000 },
  'policy.simulate': { config: {}, hours: -1 },
};

describe('every method', () => {
  it('refuses every method but auth.login before login with 4001, and keeps the socket for the login', async () => {
    const c = await t.connect();
    for (const m of METHOD_NAMES.filter((n) => n !== 'auth.login')) {
      const e = await c.callError(m, {});
      expect(e.code, m).toBe(ErrorCode.Unauthenticated);
    }
    await c.login(t.adminToken);
    expect((await c.call('config.get', {})).revision).toBeGreaterThan(0);
  });

  it('refuses every admin method to a viewer with 4003, before looking at the params', async () => {
    const adminOnly = METHOD_NAMES.filter((m) => Methods[m].access === 'admin');
    expect(adminOnly).toEqual(
      expect.arrayContaining(['config.update', 'config.revert', 'groups.addEntry', 'groups.removeEntry', 'clients.trust', 'clients.unblock', 'queue.retry', 'queue.delete', 'tokens.list', 'tokens.create', 'tokens.revoke']),
    );
    for (const m of adminOnly) {
      const e = await viewer.callError(m, {});
      expect(e.code, m).toBe(ErrorCode.Forbidden);
      expect(e.message).toContain('admin');
    }
  });

  it('answers -32602 with the zod issues for invalid params of every method', async () => {
    for (const m of METHOD_NAMES.filter((n) => n !== 'auth.login')) {
      const bad = BAD_PARAMS[m];
      expect(bad, `a bad-params case for ${m}`).toBeDefined();
      const e = await admin.callError(m, bad);
      expect(e.code, m).toBe(ErrorCode.InvalidParams);
      const data = e.data as { issues: { path: unknown[]; message: string }[] };
      expect(data.issues.length, m).toBeGreaterThan(0);
      expect(typeof data.issues[0]!.message).toBe('string');
    }
    // the issue names the key
    const e = await admin.callError('config.update', BAD_PARAMS['config.update']);
    expect((e.data as { issues: { path: unknown[] }[] }).issues[0]!.path).toEqual(['config', 'limits', 'messagesPerHour', 'max']);
  });

  it('auth.login: a wrong token is 4001; the result names the token, role, relay and fingerprint', async () => {
    const c = await t.connect();
    expect((await c.callError('auth.login', { token: 'rwt_wrong' })).code).toBe(ErrorCode.Unauthenticated);
    expect((await c.callError('auth.login', {})).code).toBe(ErrorCode.InvalidParams);
    const r = await c.login(t.adminToken);
    expect(r).toMatchObject({ name: 'admin', role: 'admin', protocolVersion: 1, relay: { fingerprint256: t.fingerprint, smtp: `127.0.0.1:${t.port}` } });
    expect((await c.callError('auth.login', { token: t.adminToken })).code).toBe(ErrorCode.InvalidRequest);
  });
});

describe('config', () => {
  it('config.get, config.update with baseRevision, a stale one is 4009, history lists who and what, revert', async () => {
    const g = await admin.call('config.get', {});
    expect(g.config.limits.messagesPerHour.max).toBe(2);
    const changed = structuredClone(g.config);
    changed.limits.messagesPerHour.max = 50;
    const u = await admin.call('config.update', { baseRevision: g.revision, config: changed });
    expect(u.revision).toBe(g.revision + 1);
    expect(u.changes).toEqual([{ path: 'limits.messagesPerHour.max', op: 'change', before: 2, after: 50 }]);
    expect(t.relay.config.current.limits.messagesPerHour.max).toBe(50);
    // a second admin working from the old revision does not overwrite silently
    const other = await t.admin();
    const stale = await other.callError('config.update', { baseRevision: g.revision, config: g.config });
    expect(stale.code).toBe(ErrorCode.Conflict);
    expect(stale.data).toEqual({ baseRevision: g.revision, currentRevision: u.revision });
    expect(t.relay.config.current.limits.messagesPerHour.max).toBe(50);
    // everyone logged in hears of the change
    await viewer.waitFor(() => viewer.of('config.changed').some((n) => n.revision === u.revision), 3000, 'config.changed');

    const h = await viewer.call('config.history', { limit: 10 });
    expect(h.current).toBe(u.revision);
    expect(h.revisions[0]).toMatchObject({ revision: u.revision, by: 'admin', source: 'config.update', remoteIp: '127.0.0.1' });
    expect(h.revisions[0]!.changes[0]!.path).toBe('limits.messagesPerHour.max');

    // an old revision can be read and reverted to
    expect((await viewer.call('config.get', { revision: g.revision })).config.limits.messagesPerHour.max).toBe(2);
    expect((await admin.callError('config.revert', { revision: g.revision, baseRevision: g.revision })).code).toBe(ErrorCode.Conflict);
    const r = await admin.call('config.revert', { revision: g.revision, baseRevision: u.revision });
    expect(r.changes).toEqual([{ path: 'limits.messagesPerHour.max', op: 'change', before: 50, after: 2 }]);
    expect(t.relay.config.current.limits.messagesPerHour.max).toBe(2);
    expect((await admin.callError('config.revert', { revision: 9999 })).code).toBe(ErrorCode.NotFound);
    expect((await admin.callError('config.get', { revision: 9999 })).code).toBe(ErrorCode.NotFound);

    const audit = t.auditLines().filter((a) => a.method === 'config.update' || a.method === 'config.revert');
    expect(audit.find((a) => a.ok === true && a.method === 'config.update')).toMatchObject({
      by: 'admin', role: 'admin', remoteIp: '127.0.0.1', revision: u.revision,
      params: { baseRevision: g.revision, config: '(see changes)' },
      changes: [{ path: 'limits.messagesPerHour.max', before: 2, after: 50 }],
    });
    expect(audit.find((a) => a.ok === false && (a.error as { code: number }).code === ErrorCode.Conflict)).toMatchObject({ method: 'config.update', by: 'admin' });
  });

  it('viewers never see secrets; the diff never shows them', async () => {
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.users['sales'] = { passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA' };
    const u = await admin.call('config.update', { baseRevision: g.revision, config: c });
    expect(JSON.stringify(u.changes)).not.toContain('aGFzaA');
    expect(u.changes[0]).toMatchObject({ path: 'users.sales', op: 'add', after: { passwordHash: '(secret)' } });
    const seen = await viewer.call('config.get', {});
    expect(seen.config.users['sales']!.passwordHash).toBe('scrypt$(hidden)');
    expect((await admin.call('config.get', {})).config.users['sales']!.passwordHash).toContain('aGFzaA');
  });

  it('a config that the store refuses as a whole answers 4022 naming the key', async () => {
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.exemptGroups = ['Nope'];
    const e = await admin.callError('config.update', { baseRevision: g.revision, config: c });
    // the shared schema catches it already at the params
    expect(e.code).toBe(ErrorCode.InvalidParams);
    expect(JSON.stringify(e.data)).toContain('exemptGroups');
  });

  it('a wrong value in config.update says what the key must be and what it is, as config.json errors do', async () => {
    const cur = await admin.call('config.get', {});
    const c = structuredClone(cur.config) as unknown as { limits: { messagesPerHour: { max: unknown } } };
    c.limits.messagesPerHour.max = 1.5;
    const e = await admin.callError('config.update', { baseRevision: cur.revision, config: c });
    expect(e.code).toBe(ErrorCode.InvalidParams);
    expect(e.message).toBe('invalid params for config.update: config.limits.messagesPerHour.max: must be a whole number; it is 1.5');
    expect((await admin.call('config.get', {})).revision).toBe(cur.revision);
  });

  it('a wrong type at a key that may be null says "or null", in params and inside config.update alike', async () => {
    const comment = await admin.callError('groups.addEntry', { group: 'Partners', address: '198.51.100.9', comment: 5 });
    expect(comment.message).toBe('invalid params for groups.addEntry: comment: must be text in quotes or null; it is 5');
    const cur = await admin.call('config.get', {});
    const c = structuredClone(cur.config) as unknown as { smtp: { hostname: unknown } };
    c.smtp.hostname = 7;
    const e = await admin.callError('config.update', { baseRevision: cur.revision, config: c });
    expect(e.message).toBe('invalid params for config.update: config.smtp.hostname: must be text in quotes or null; it is 7');
    // a key that may not be null keeps the plain wording
    const group = await admin.callError('groups.addEntry', { group: 5, address: '198.51.100.9' });
    expect(group.message).toMatch(/^invalid params for groups.addEntry: group: must be text in quotes; it is 5$/);
  });
});

describe('groups', () => {
  it('addEntry validates with the shared schema and names the bad entry; idempotent by address; removeEntry', async () => {
    const bad = await admin.callError('groups.addEntry', { group: 'Partners', address: '198.51.100.0/33' });
    expect(bad.code).toBe(ErrorCode.InvalidParams);
    expect(bad.message).toContain('198.51.100.0/33');
    expect((bad.data as { issues: { path: unknown[] }[] }).issues[0]!.path).toEqual(['address']);
    const badDate = await admin.callError('groups.addEntry', { group: 'Partners', address: '198.51.100.7', expiresAt: 'tomorrow' });
    expect(badDate.code).toBe(ErrorCode.InvalidParams);

    const a = await admin.call('groups.addEntry', { group: 'Partners', address: ' 198.51.100.0 / 24 ', comment: 'partner net', expiresAt: '2027-01-01T00:00:00Z' });
    expect(a).toMatchObject({ group: 'Partners', created: false, updated: false, entry: { address: '198.51.100.0/24', comment: 'partner net', addedBy: 'admin' } });
    expect(t.relay.config.current.groups['Partners']).toHaveLength(1);
    const again = await admin.call('groups.addEntry', { group: 'Partners', address: '198.51.100.0/24', comment: 'renamed' });
    expect(again.updated).toBe(true);
    // what it replaced, for an exact undo; a new entry replaced nothing
    expect(again.previous).toMatchObject({ address: '198.51.100.0/24', comment: 'partner net', expiresAt: '2027-01-01T00:00:00Z' });
    expect(a.previous).toBeNull();
    expect(t.relay.config.current.groups['Partners']).toEqual([expect.objectContaining({ address: '198.51.100.0/24', comment: 'renamed' })]);
    const created = await admin.call('groups.addEntry', { group: 'Vendors', address: '2001:db8::/48' });
    expect(created.created).toBe(true);

    const stale = await admin.callError('groups.addEntry', { group: 'Partners', address: '203.0.113.9', baseRevision: a.revision });
    expect(stale.code).toBe(ErrorCode.Conflict);

    const rm = await admin.call('groups.removeEntry', { group: 'Partners', address: '198.51.100.0/24' });
    expect(rm.removed.address).toBe('198.51.100.0/24');
    expect(t.relay.config.current.groups['Partners']).toEqual([]);
    expect((await admin.callError('groups.removeEntry', { group: 'Partners', address: '198.51.100.0/24' })).code).toBe(ErrorCode.NotFound);
    expect((await admin.callError('groups.removeEntry', { group: 'Nope', address: '1.2.3.4' })).code).toBe(ErrorCode.NotFound);
    expect(t.auditLines().filter((l) => l.method === 'groups.addEntry' && l.ok).length).toBeGreaterThanOrEqual(3);
  });
});

describe('clients', () => {
  it('clients.list shows counters, blocks, trusted and recent rejections; unblock clears a block; trust is idempotent', async () => {
    // raise the limit back to 2 for this test's client
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.messagesPerHour.max = 2;
    c.limits.unknownRecipients = { mode: 'enforce', max: 2, blockMinutes: 60 };
    await admin.call('config.update', { baseRevision: g.revision, config: c });
    for (let i = 0; i < 3; i++) await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.21' });
    await sendMail(t.port, { from: 'a@example.org', to: ['nobody1@example.com', 'nobody2@example.com'], localAddress: '127.0.0.22' });

    const list = await viewer.call('clients.list', {});
    const c21 = list.clients.find((x) => x.ip === '127.0.0.21')!;
    expect(c21).toMatchObject({ messagesLastHour: 2, trusted: false, blockedUntil: null });
    expect(c21.recentRejections[0]).toMatchObject({ rule: 'limits.messagesPerHour', code: 450 });
    const c22 = list.clients.find((x) => x.ip === '127.0.0.22')!;
    expect(c22.blockedRule).toBe('limits.unknownRecipients');
    expect(c22.blockedUntil).toBeGreaterThan(t.clock.now());
    expect((await viewer.call('clients.list', { blockedOnly: true })).clients.map((x) => x.ip)).toEqual(['127.0.0.22']);
    expect((await viewer.call('clients.list', { ip: '127.0.0.0/24' })).total).toBeGreaterThanOrEqual(2);
    expect((await viewer.call('clients.list', { ip: '192.0.2.0/24' })).total).toBe(0);

    const un = await admin.call('clients.unblock', { ip: '127.0.0.22' });
    expect(un.unblocked).toBe(true);
    expect((await admin.call('clients.unblock', { ip: '127.0.0.22' })).unblocked).toBe(false);
    const after = await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.22' });
    expect(after.data?.code).toBe(250);
    expect((await admin.callError('clients.unblock', { ip: 'not-an-ip' })).code).toBe(ErrorCode.InvalidParams);

    // trust: once adds, twice is a no-op; an address already covered by a CIDR entry is already trusted
    const t1 = await admin.call('clients.trust', { ip: '127.0.0.21', comment: 'sales laptop' });
    expect(t1).toMatchObject({ group: 'Trusted', alreadyTrusted: false, entry: { address: '127.0.0.21', comment: 'sales laptop', addedBy: 'admin' } });
    const t2 = await admin.call('clients.trust', { ip: '127.0.0.21' });
    expect(t2).toMatchObject({ alreadyTrusted: true, revision: t1.revision });
    expect(t.relay.config.current.groups['Trusted']!.filter((e) => e.address === '127.0.0.21')).toHaveLength(1);
    const t3 = await admin.call('clients.trust', { ip: '192.0.2.44' });
    expect(t3).toMatchObject({ alreadyTrusted: true, entry: { address: '192.0.2.0/24' } });
    const listed = (await viewer.call('clients.list', { ip: '127.0.0.21' })).clients[0]!;
    expect(listed).toMatchObject({ trusted: true, trustedBy: { group: 'Trusted', address: '127.0.0.21' }, messagesLastHour: 0 });
    expect(t.events.filter((e) => e.kind === 'trusted')).toHaveLength(1);
  });

  it('clients.trust without an exempt group answers 4022', async () => {
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.exemptGroups = [];
    await admin.call('config.update', { baseRevision: g.revision, config: c });
    const e = await admin.callError('clients.trust', { ip: '127.0.0.30' });
    expect(e.code).toBe(ErrorCode.InvalidConfig);
    expect(e.message).toContain('exemptGroups');
    const now = await admin.call('config.get', {});
    await admin.call('config.update', { baseRevision: now.revision, config: g.config });
  });
});

describe('events, stats, queue, tokens, audit', () => {
  it('events.subscribe delivers a backlog since an id and live batches; events.query reads the history', async () => {
    const startId = (await viewer.call('stats.get', {})).lastEventId;
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.31' });
    await waitFor(() => t.events.some((e) => e.kind === 'disconnect' && e.ip === '127.0.0.31'), 'the disconnect of 127.0.0.31');
    const sub = await viewer.call('events.subscribe', { sinceId: startId, filter: { ip: '127.0.0.31' } });
    expect(sub.backlog.map((e) => e.kind).slice(0, 6)).toEqual(['connect', 'helo', 'mail', 'rcpt', 'accepted', 'disconnect']);
    expect(sub.backlog.every((e) => e.ip === '127.0.0.31' && e.id > startId)).toBe(true);
    const rej = await viewer.call('events.subscribe', { filter: { rejectionsOnly: true } });
    expect(rej.backlog).toEqual([]);
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.31' });
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.31' });
    await viewer.waitFor(() => viewer.events(rej.subscriptionId).length >= 1, 3000, 'a rejection');
    expect(viewer.events(rej.subscriptionId)[0]).toMatchObject({ kind: 'rejected', rule: 'limits.messagesPerHour', ip: '127.0.0.31' });
    await viewer.waitFor(() => viewer.events(sub.subscriptionId).filter((e) => e.kind === 'disconnect').length >= 2, 3000, 'live events');
    expect(viewer.events(sub.subscriptionId).every((e) => e.ip === '127.0.0.31')).toBe(true);
    expect(await viewer.call('events.unsubscribe', { subscriptionId: rej.subscriptionId })).toEqual({ ok: true });
    expect(await viewer.call('events.unsubscribe', { subscriptionId: rej.subscriptionId })).toEqual({ ok: false });

    const q = await viewer.call('events.query', { ip: '127.0.0.31', limit: 100 });
    expect(q.events.filter((e) => e.kind === 'connect').length).toBe(3);
    expect(q.events[0]!.id).toBeGreaterThan(q.events[1]!.id);
    const asc = await viewer.call('events.query', { ip: '127.0.0.31', kinds: ['accepted'], order: 'asc', limit: 1 });
    expect(asc.events).toHaveLength(1);
    expect(asc.more).toBe(true);
    const next = await viewer.call('events.query', { ip: '127.0.0.31', kinds: ['accepted'], order: 'asc', limit: 10, cursor: asc.nextCursor! });
    expect(next.events).toHaveLength(1);
    expect(next.more).toBe(false);
    const cidr = await viewer.call('events.query', { ip: '127.0.0.0/24', rejectionsOnly: true, limit: 1000 });
    expect(cidr.events.some((e) => e.ip === '127.0.0.31')).toBe(true);
    const none = await viewer.call('events.query', { from: t.clock.now() + 1, limit: 10 });
    expect(none.events).toEqual([]);
    expect((await viewer.callError('events.query', { ip: '127.0.0.999', limit: 1 })).code).toBe(ErrorCode.InvalidParams);
  });

  it('stats.get has totals, rules, queue, series; stats.tick arrives every second', async () => {
    const s = await viewer.call('stats.get', {});
    // the exact figures: the relay's own events and queue (the earlier tests' mail, held for 127.0.0.1:9)
    const accepted = t.events.filter((e) => e.kind === 'accepted').length;
    const overHour = t.events.filter((e) => e.kind === 'rejected' && e.rule === 'limits.messagesPerHour').length;
    expect(accepted).toBeGreaterThan(0);
    expect(overHour).toBeGreaterThan(0);
    expect(s.totals.accepted).toBe(accepted);
    expect(s.totals.rejectedByRule['limits.messagesPerHour']).toBe(overHour);
    expect(t.relay.queue.size).toBeGreaterThan(0);
    expect(s.queue.size).toBe(t.relay.queue.size);
    expect(s.manage.sessions).toBeGreaterThanOrEqual(2);
    expect(s.history.storedEvents).toBeGreaterThan(0);
    const before = viewer.of('stats.tick').length;
    await viewer.waitFor(() => viewer.of('stats.tick').length > before, 3000, 'stats.tick');
    const tick = viewer.of('stats.tick').at(-1)!;
    expect(tick.configRevision).toBe(t.relay.configRevision);
    const s2 = await viewer.call('stats.get', {});
    expect(s2.series.length).toBeGreaterThan(0);
  });

  it('queue.list, queue.retry and queue.delete', async () => {
    const q = await viewer.call('queue.list', {});
    expect(q.total).toBeGreaterThan(0);
    const id = q.items[0]!.id;
    expect(q.items[0]).toMatchObject({ from: 'a@example.org', to: ['alice@example.com'] });
    expect(await admin.call('queue.retry', { id })).toEqual({ ok: true });
    // the retry's attempt (to 127.0.0.1:9) may still be under way, and then the delete is pending until it ends
    expect(await admin.call('queue.delete', { id })).toEqual({ ok: true, pending: expect.any(Boolean) });
    await waitFor(async () => !(await viewer.call('queue.list', {})).items.some((i) => i.id === id), 'the deleted message to leave the queue');
    expect((await admin.callError('queue.delete', { id })).code).toBe(ErrorCode.NotFound);
    expect((await admin.callError('queue.retry', { id: 'nope' })).code).toBe(ErrorCode.NotFound);
    expect((await viewer.call('queue.list', { limit: 1 })).items.length).toBeLessThanOrEqual(1);
  });

  it('tokens.list, tokens.create (the secret once, never in the audit), tokens.revoke', async () => {
    const l = await admin.call('tokens.list', {});
    expect(l.tokens.find((x) => x.name === 'watcher')).toMatchObject({ role: 'viewer', sessions: 1 });
    const c = await admin.call('tokens.create', { name: 'ops-laptop', role: 'viewer' });
    expect(c.token).toMatch(/^rwt_/);
    expect((await admin.callError('tokens.create', { name: 'ops-laptop', role: 'admin' })).code).toBe(ErrorCode.Conflict);
    const other = await t.connect();
    expect((await other.login(c.token)).role).toBe('viewer');
    const r = await admin.call('tokens.revoke', { name: 'ops-laptop' });
    expect(r.closedSessions).toBe(1);
    expect((await other.closed).code).toBe(4003);
    expect((await admin.callError('tokens.revoke', { name: 'ops-laptop' })).code).toBe(ErrorCode.NotFound);
    const audit = JSON.stringify(t.auditLines());
    expect(audit).not.toContain(c.token);
    expect(audit).toContain('ops-laptop');
  });

  it('audit.list returns the admin actions, newest first, in pages', async () => {
    const a = await viewer.call('audit.list', { limit: 3 });
    expect(a.entries).toHaveLength(3);
    expect(a.entries[0]!.seq).toBeGreaterThan(a.entries[1]!.seq);
    const next = await viewer.call('audit.list', { limit: 3, beforeSeq: a.entries[2]!.seq });
    expect(next.entries[0]!.seq).toBe(a.entries[2]!.seq - 1);
    expect(a.entries[0]).toMatchObject({ by: 'admin', remoteIp: '127.0.0.1' });
  });

  it('policy.simulate is allowed to a viewer and answers per rule', async () => {
    const g = await viewer.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.messagesPerHour.max = 1;
    const r = await viewer.call('policy.simulate', { config: c, hours: 1 });
    expect(r.replayed.mailAttempts).toBeGreaterThan(0);
    expect(r.rules.find((x) => x.rule === 'limits.messagesPerHour')!.newlyRejected).toBeGreaterThan(0);
    expect(r.caveats.length).toBeGreaterThan(0);
  });

  it('a batch of requests gets a batch of replies; notifications (no id) get none', async () => {
    admin.send(JSON.stringify([
      { jsonrpc: '2.0', id: 'a', method: 'config.history', params: { limit: 1 } },
      { jsonrpc: '2.0', method: 'stats.get' },
      { jsonrpc: '2.0', id: 'b', method: 'nope' },
    ]));
    await admin.waitFor(() => admin.frames.some((f) => Array.isArray(f)), 3000, 'a batch reply');
    const batch = admin.frames.find((f) => Array.isArray(f)) as { id: string; result?: unknown; error?: { code: number } }[];
    expect(batch).toHaveLength(2);
    expect(batch[0]!.id).toBe('a');
    expect(batch[1]).toMatchObject({ id: 'b', error: { code: ErrorCode.MethodNotFound } });
  });
});
