/**
 * events.query with two kinds or more (and no exact address or session, whose indexes serve any kinds in (at, id)
 * order). `kind IN (...)` took the (kind, at) index, one walk per kind, and sorted what they read (TEMP B-TREE) on
 * every page. Each page must instead start at its cursor and stop after its rows, with no sort:
 *  - the plan of every statement a real events.query runs for such a filter (oldest and newest first, with and without
 *    a CIDR, with a time range): walks of the (kind, at) index bounded by the cursor's `at`, merged, no TEMP B-TREE;
 *  - paging returns every event of those kinds once, in (at, id) order, ties on `at` across page boundaries and ids
 *    out of `at` order (a clock that went back) included, with repeated kinds in the filter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tiedHistories, TIED_T } from './helpers/history-fixtures.ts';
import { recordSessions, startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';

type Db = { prepare(sql: string): { all(...a: unknown[]): { detail: string }[] } };

function planOf(db: Db, sql: string): string {
  const n = sql.split('?').length - 1;
  return db
    .prepare(`EXPLAIN QUERY PLAN ${sql}`)
    .all(...Array.from({ length: n }, () => 0))
    .map((r) => r.detail)
    .join('; ');
}

describe('events.query with several kinds: each page walks from its cursor, without a sort', () => {
  const SESSIONS = 4000;
  let t: ManageRelay;
  let admin: WssClient;

  beforeAll(async () => {
    t = await startManageRelay({}, { relay: { eventRing: 100 } });
    admin = await t.admin();
    // 16,000 events, 4 a session, 12 per millisecond of the relay's clock (ties on `at` across pages)
    await recordSessions(t, SESSIONS, { helo: true, rejected: true, advanceEvery: 3 });
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
  });

  const cases = [
    { order: 'asc' as const },
    { order: 'desc' as const },
    { order: 'asc' as const, ip: '192.0.2.0/25' },
    { order: 'desc' as const, ip: '192.0.2.0/25' },
    { order: 'desc' as const, range: true },
  ];
  for (const c of cases) {
    it(`${c.order}${c.ip ? `, ip ${c.ip}` : ''}${c.range ? ', from/to' : ''}: the plan of every page, and what the pages return`, async () => {
      const h = t.relay.history as unknown as { stmt(sql: string): unknown; db: Db };
      const orig = h.stmt;
      const seen: string[] = [];
      h.stmt = function (sql: string) {
        if (sql.startsWith('SELECT id, ip, json')) seen.push(sql);
        return orig.call(t.relay.history, sql);
      };
      const kinds = ['connect', 'rejected', 'disconnect'] as const;
      const t0 = Date.parse('2026-11-27T12:00:00Z');
      const range = c.range ? { from: t0 + 100, to: t0 + 1200 } : {};
      let r;
      try {
        r = await admin.call('events.query', { order: c.order, kinds: [...kinds], limit: 6000, ...(c.ip ? { ip: c.ip } : {}), ...range }, 30_000);
      } finally {
        h.stmt = orig;
      }
      const paged = seen.filter((sql) => sql.includes('id <') || sql.includes('id >'));
      expect(paged.length, 'pages read after the first').toBeGreaterThan(0);
      for (const sql of seen) {
        const plan = planOf(h.db, sql);
        expect(plan, sql).not.toMatch(/TEMP B-TREE/);
        // one walk of the (kind, at) index per kind, and nothing else
        const searches = plan.split('; ').filter((d) => /^(SEARCH|SCAN)/.test(d));
        expect(searches, plan).toHaveLength(kinds.length);
        for (const d of searches) expect(d, sql).toMatch(/^SEARCH events USING INDEX events_kind \(kind=\?/);
      }
      for (const sql of paged) {
        // starting at the cursor: `at` bounded on its own, on the side the scan goes
        for (const d of planOf(h.db, sql).split('; ').filter((x) => x.startsWith('SEARCH'))) expect(d, sql).toMatch(c.order === 'desc' ? /\bat<\?/ : /\bat>\?/);
      }

      // the answer: every event of those kinds (and addresses, and time range) once, in (at, id) order
      const all = t.relay.history.query({ limit: 1_000_000, order: 'asc' }).events;
      const inNet = (ip: string | null) => !c.ip || (ip !== null && Number(ip.split('.')[3]) < 128);
      const want = all
        .filter((e) => (kinds as readonly string[]).includes(e.kind) && inNet(e.ip) && (!c.range || (e.at >= range.from! && e.at < range.to!)))
        .sort((a, b) => (c.order === 'asc' ? a.at - b.at || a.id - b.id : b.at - a.at || b.id - a.id))
        .slice(0, 6000)
        .map((e) => e.id);
      expect(want.length).toBeGreaterThan(2500);
      expect(r.events.map((e) => e.id)).toEqual(want);
    });
  }
});

describe('EventHistory.query with several kinds: every event once, in (at, id) order', () => {
  const tiedHistory = tiedHistories();

  it('ties on `at` across page boundaries, ids out of `at` order, repeated kinds, both orders, with and without a range', () => {
    const { h, events } = tiedHistory();
    const T = TIED_T;
    expect(new Set(events.map((e) => e.at)).size).toBeLessThan(events.length / 3);
    for (const kinds of [['mail', 'rejected'], ['connect', 'rcpt', 'mail', 'connect'], ['delivered', 'auth', 'helo', 'accepted', 'disconnect']]) {
      for (const order of ['asc', 'desc'] as const) {
        for (const range of [{}, { from: T + 100, to: T + 500 }]) {
          const r = range as { from?: number; to?: number };
          const want = events
            .filter((e) => kinds.includes(e.kind) && (r.from === undefined || (e.at >= r.from && e.at < r.to!)))
            .sort((a, b) => (order === 'asc' ? a.at - b.at || a.id - b.id : b.at - a.at || b.id - a.id))
            .map((e) => e.id);
          expect(want.length).toBeGreaterThan(100);
          for (const limit of [1, 7, 64, 1000]) {
            const got: number[] = [];
            let cursor: number | undefined;
            for (;;) {
              const page = h.query({ kinds, order, cursor, limit, ...range });
              got.push(...page.events.map((e) => e.id));
              if (!page.more) break;
              cursor = page.events.at(-1)!.id;
            }
            expect(got, `${kinds.join(',')} ${order} ${JSON.stringify(range)} limit ${limit}`).toEqual(want);
          }
        }
      }
    }
  });
});
