/**
 * Review probes for the paged history scans (events.subscribe's backlog, events.query), against a real relay:
 *  - a subscription held while its backlog is read: overflow of its bounded buffer is reported as `dropped`, and the
 *    stream after lastId starts right after it;
 *  - a subscribe in a batch with other methods: the backlog, then the batches, contiguous;
 *  - revocation (by another session, by itself) and unsubscribe while a scan runs: the scan stops, nothing is left;
 *  - events.query by CIDR over IPv4, IPv6 and IPv4-mapped addresses, both orders, page after page: what the filter
 *    on parsed events finds.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { CloseCode } from '../shared/protocol.ts';
import { compileFilter } from '../relay/manage/filter.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

const N = 30_000;
const BUFFER = 50;

let t: ManageRelay;
let admin: WssClient;
const opened: WssClient[] = [];

const ips = ['192.0.2.1', '192.0.2.200', '2001:db8::1', '2001:db8::ff:1', '::ffff:192.0.2.7', '::ffff:198.51.100.3', '198.51.100.9'];

beforeAll(async () => {
  t = await startManageRelay({}, { relay: { eventRing: 100, manageLimits: { subscriberBufferEvents: BUFFER, requestBurst: 1000, requestsPerSecond: 1000 } } });
  admin = await t.admin();
  for (let i = 0; i < N; i++) {
    const ip = ips[i % ips.length]!;
    if (i % 3 === 0) {
      t.relay.bus.emit({ kind: 'rejected', sessionId: `s${i}`, ip, stage: 'rcpt', rule: 'recipient.unknown', code: 550, text: i % 997 === 0 ? 'tab\there "q" \\ back Ω\u2028' : 'no such user', enforced: true });
    } else {
      t.relay.bus.emit({ kind: 'connect', sessionId: `s${i}`, ip, port: 1000 + (i % 5000) });
    }
  }
}, 60_000);

afterEach(async () => {
  for (const c of opened.splice(0)) await c.close();
});

afterAll(async () => {
  await t?.stop();
});

async function viewer(name?: string) {
  const r = await t.clientWithRole('viewer', name);
  opened.push(r.client);
  return r;
}

/** Run `onPage` at each page of a history read method while it is wrapped. */
function watch(method: 'rangeDesc' | 'query', onPage: (page: number) => void): { pages: () => number; restore: () => void } {
  const h = t.relay.history as unknown as Record<string, (...a: unknown[]) => unknown>;
  const orig = h[method]!;
  let n = 0;
  h[method] = function (...a: unknown[]) {
    onPage(++n);
    return orig.apply(t.relay.history, a);
  };
  return { pages: () => n, restore: () => void (h[method] = orig) };
}

const emit = (tag: string) => t.relay.bus.emit({ kind: 'connect', sessionId: tag, ip: '127.0.0.9', port: 25 });

describe('a held subscription', () => {
  it('overflow while its backlog is read is reported as dropped; the batches start at lastId + 1', async () => {
    const { client: c } = await viewer();
    const w = watch('rangeDesc', (page) => {
      if (page === 2) for (let k = 0; k < BUFFER + 30; k++) emit(`during-${k}`);
    });
    let sub;
    try {
      sub = await c.call('events.subscribe', { sinceId: 0, filter: { kinds: ['connect'] } }, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pages()).toBeGreaterThan(2);
    const batchesOf = () => c.of('events.batch').filter((b) => b.subscriptionId === sub.subscriptionId);
    await c.waitFor(() => batchesOf().length > 0, 5000, 'the first batch');
    const batches = batchesOf();
    expect(batches[0]!.events[0]!.id).toBe(sub.lastId + 1);
    expect(batches[0]!.events).toHaveLength(BUFFER);
    expect(batches[0]!.dropped).toBe(30);
  });

  it('a subscribe in a batch with other methods: one reply frame, then contiguous batches', async () => {
    const { client: c } = await viewer();
    const w = watch('rangeDesc', (page) => {
      if (page === 2) for (let k = 0; k < 5; k++) emit(`b-${k}`);
    });
    const sinceId = t.relay.bus.lastId - 8000;
    // the batch's replies come as one array frame; notifications every session gets (stats.tick each second,
    // config.changed) may come before it and are not what this test looks at
    const replies = new Promise<unknown[]>((resolve) => {
      const onMessage = (d: unknown) => {
        const m = JSON.parse(String(d)) as unknown;
        if (!Array.isArray(m)) return;
        c.ws.off('message', onMessage);
        resolve(m);
      };
      c.ws.on('message', onMessage);
    });
    c.send(
      JSON.stringify([
        { jsonrpc: '2.0', id: 'a', method: 'events.subscribe', params: { sinceId } },
        { jsonrpc: '2.0', id: 'b', method: 'events.query', params: { ip: '192.0.2.0/24', limit: 10 } },
        { jsonrpc: '2.0', id: 'c', method: 'stats.get', params: {} },
      ]),
    );
    const frame = (await replies) as { id: string; result: { subscriptionId: string; backlog: RelayEvent[]; lastId: number } }[];
    w.restore();
    expect(frame.map((r) => r.id)).toEqual(['a', 'b', 'c']);
    const sub = frame[0]!.result;
    const last = emit('batch-final').id;
    await c.waitFor(() => c.events(sub.subscriptionId).some((e) => e.id === last), 5000, 'the final event');
    const ids = [...sub.backlog, ...c.events(sub.subscriptionId)].map((e) => e.id);
    expect(ids[0]).toBe(sinceId + 1);
    for (let i = 1; i < ids.length; i++) expect(ids[i], `after ${ids[i - 1]}`).toBe(ids[i - 1]! + 1);
    expect(ids.at(-1)).toBe(last);
  });
});

describe('while a scan runs', () => {
  it('its token revoked by another session: the session closes, the scan stops, no subscription is left', async () => {
    const { client: c, name } = await viewer();
    let revokedAt = 0;
    const w = watch('rangeDesc', (page) => {
      if (page === 2) {
        revokedAt = page;
        t.relay.tokens.revoke(name);
      }
    });
    try {
      void c.request({ jsonrpc: '2.0', method: 'events.subscribe', params: { sinceId: 0, filter: { text: 'nothing matches this' } } }, 30_000).catch(() => {});
      const closed = await c.closed;
      expect(closed.code).toBe(CloseCode.TokenRevoked);
      await waitFor(() => t.relay.manage!.subscribedSessions === 0, 'the fan-out to empty');
      await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
      expect(w.pages()).toBeLessThanOrEqual(revokedAt + 1);
    } finally {
      w.restore();
    }
    expect(c.of('session.closed')[0]?.reason).toBe('revoked');
  });

  it('its session revokes its own token from another frame: reply to the revoke, then the close; the scan stops', async () => {
    const { client: c, name } = await t.clientWithRole('admin');
    opened.push(c);
    let revoke = null as Promise<{ closedSessions: number }> | null;
    const ss = (t.relay.manage as unknown as { sessions: Set<{ auth: { name: string } | null; subscriptions: Map<string, unknown> }> }).sessions;
    const mine = [...ss].find((s) => s.auth?.name === name)!;
    let readAfterClear = 0;
    const w = watch('rangeDesc', (page) => {
      if (page > 1 && mine.subscriptions.size === 0) readAfterClear++;
      if (page === 2) revoke = c.call('tokens.revoke', { name });
    });
    try {
      void c.request({ jsonrpc: '2.0', method: 'events.subscribe', params: { sinceId: 0, filter: { text: 'nothing matches this' } } }, 30_000).catch(() => {});
      await waitFor(() => revoke !== null, 'page 2');
      const r = (await revoke)!;
      expect(r.closedSessions).toBe(1);
      await c.closed;
      expect(c.of('session.closed')[0]?.reason).toBe('revoked');
      await waitFor(() => t.relay.manage!.subscribedSessions === 0, 'the fan-out to empty');
      // no page is read once the revocation took the subscription away
      expect(readAfterClear).toBe(0);
    } finally {
      w.restore();
    }
  });

  it('unsubscribed meanwhile: the scan stops, the session holds no subscription', async () => {
    const { client: c } = await viewer();
    let unsub = null as Promise<{ ok: boolean }> | null;
    const ss = (t.relay.manage as unknown as { sessions: Set<{ id: string; auth: unknown; subscriptions: Map<string, unknown> }> }).sessions;
    const mine = [...ss].filter((s) => s.auth).at(-1)!;
    let readAfterUnsubscribe = 0;
    const w = watch('rangeDesc', (page) => {
      if (page > 1 && mine.subscriptions.size === 0) readAfterUnsubscribe++;
      if (page === 1) unsub = c.call('events.unsubscribe', { subscriptionId: `${mine.id}.1` });
    });
    try {
      const sub = await c.call('events.subscribe', { sinceId: 0, filter: { text: 'nothing matches this' } }, 30_000);
      expect((await unsub!).ok).toBe(true);
      expect(sub.backlog).toEqual([]);
      // no page is read once the subscription is gone
      expect(readAfterUnsubscribe).toBe(0);
    } finally {
      w.restore();
    }
    const stats = await c.call('stats.get', {});
    expect(stats.manage.subscriptions).toBe(0);
  });
});

describe('events.query by CIDR: the same events as the filter on parsed events', () => {
  for (const ip of ['192.0.2.0/24', '2001:db8::/32', '::ffff:192.0.2.0/120', '198.51.100.0/24', '192.0.2.1-192.0.2.7', '::ffff:0:0/96']) {
    for (const order of ['asc', 'desc'] as const) {
      it(`${ip}, ${order}`, async () => {
        const f = compileFilter({ ip });
        const want = t.relay.history
          .query({ limit: 1_000_000, order })
          .events.filter((e) => f.test(e))
          .map((e) => e.id);
        expect(want.length).toBeGreaterThan(0);
        const got: number[] = [];
        let cursor: number | undefined;
        for (let calls = 0; calls < 100; calls++) {
          const r = await admin.call('events.query', { ip, order, limit: 3001, ...(cursor !== undefined ? { cursor } : {}) }, 30_000);
          got.push(...r.events.map((e) => e.id));
          if (!r.more) break;
          cursor = r.nextCursor!;
        }
        expect(got).toEqual(want);
      });
    }
  }
});

describe('events.query without a CIDR, read in pages: the same as one read', () => {
  const cases: { name: string; q: Record<string, unknown> }[] = [
    { name: 'all', q: {} },
    { name: 'exact IPv6', q: { ip: '2001:db8::1' } },
    { name: 'exact IPv4', q: { ip: '192.0.2.200' } },
    { name: 'rejections', q: { rejectionsOnly: true } },
    { name: 'kinds, from/to', q: { kinds: ['connect'], from: 0, to: Date.now() + 86_400_000 } },
  ];
  for (const { name, q } of cases) {
    for (const order of ['asc', 'desc'] as const) {
      it(`${name}, ${order}`, async () => {
        const want = t.relay.history
          .query({ ...(q as object), ...(q.ip ? { ip: compileFilter({ ip: q.ip as string }).exactIp! } : {}), limit: 1_000_000, order })
          .events.map((e) => e.id);
        expect(want.length).toBeGreaterThan(0);
        const got: number[] = [];
        let cursor: number | undefined;
        for (let calls = 0; calls < 100; calls++) {
          const r = await admin.call('events.query', { ...q, order, limit: 7001, ...(cursor !== undefined ? { cursor } : {}) } as never, 30_000);
          got.push(...r.events.map((e) => e.id));
          if (!r.more) {
            expect(r.nextCursor).toBeNull();
            break;
          }
          expect(r.nextCursor).toBe(r.events.at(-1)!.id);
          cursor = r.nextCursor!;
        }
        expect(got).toEqual(want.filter((id) => id <= got.at(-1)! || order === 'desc'));
        expect(got.length).toBeGreaterThanOrEqual(want.length);
      });
    }
  }
});

describe('events.subscribe with an ip or text filter: the prefilter keeps what the filter keeps', () => {
  const filters = [
    { text: 'TAB\\THERE' },
    { text: '\\"q\\"' },
    { text: 'ω' },
    { text: '\u2028' },
    { text: '\\\\ back' },
    { text: '::FFFF:192.0.2.7' },
    { ip: '::ffff:192.0.2.0/120' },
    { ip: '192.0.2.0/24' },
    { ip: '2001:db8::/32', text: 'rejected' },
    { ip: '198.51.100.3' },
    { ip: '::ffff:198.51.100.3' },
  ];
  for (const filter of filters) {
    it(JSON.stringify(filter), async () => {
      const f = compileFilter(filter);
      const want = t.relay.history.query({ limit: 1_000_000, order: 'asc' }).events.filter((e) => f.test(e)).map((e) => e.id);
      const sub = await admin.call('events.subscribe', { sinceId: 0, filter }, 30_000);
      await admin.call('events.unsubscribe', { subscriptionId: sub.subscriptionId });
      expect(sub.backlog.map((e) => e.id)).toEqual(want.filter((id) => id <= sub.lastId).slice(-10_000));
    });
  }
});

describe('events.query pages start their index scan at the cursor', () => {
  // Each page after the first continues from a cursor. Unless the SQL bounds `at` on its own (not only inside an OR),
  // SQLite walks the (at) index from its start on every page, past every row the earlier pages read: page k of a
  // 200,000-row CIDR scan costs k times the first, and the late pages hold the event loop far longer than "a page".
  for (const order of ['asc', 'desc'] as const) {
    for (const ip of ['192.0.2.0/24', '2001:db8::1', undefined]) {
      it(`${ip ?? 'no ip'}, ${order}: every page after the first is an index range from the cursor`, async () => {
        const h = t.relay.history as unknown as { stmt(sql: string): unknown; db: { prepare(sql: string): { all(...a: unknown[]): { detail: string }[] } } };
        const orig = h.stmt;
        const seen: string[] = [];
        h.stmt = function (sql: string) {
          if (sql.startsWith('SELECT id, ip, json FROM events') && !sql.includes('NOT INDEXED')) seen.push(sql);
          return orig.call(t.relay.history, sql);
        };
        try {
          await admin.call('events.query', { order, limit: 6000, ...(ip ? { ip } : {}) }, 30_000);
        } finally {
          h.stmt = orig;
        }
        const paged = seen.filter((sql) => sql.includes('id <') || sql.includes('id >'));
        expect(paged.length).toBeGreaterThan(0);
        for (const sql of paged) {
          const n = sql.split('?').length - 1;
          const plan = h.db
            .prepare(`EXPLAIN QUERY PLAN ${sql}`)
            .all(...Array.from({ length: n }, () => 0))
            .map((r) => r.detail)
            .join('; ');
          expect(plan, sql).toMatch(order === 'desc' ? /\bat<\?/ : /\bat>\?/);
        }
      });
    }
  }
});
