/**
 * EventHistory.page(), which policy.simulate reads the history with, continues each page from a keyset cursor
 * (at, id). As for events.query (commit a151cc2), each page must start its index walk at the cursor and stop after its
 * rows: a page that walks the window from `from` again (and sorts it) costs more page after page, so the late pages
 * of a long replay hold the event loop far longer than a page.
 *  - the plan of every paged statement a real policy.simulate runs: a range of the (at) index, in (at, id) order with
 *    no sort, bounded below by the cursor's `at`;
 *  - paging returns every event of the replayed kinds in [from, to) once, in (at, id) order, ties on `at` across
 *    page boundaries included, ids out of `at` order included (a clock that went back).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tiedHistories, TIED_T } from './helpers/history-fixtures.ts';
import { recordSessions, startManageRelay, type ManageRelay } from './helpers/wss-client.ts';

const KINDS = ['connect', 'disconnect', 'auth', 'mail', 'rcpt', 'accepted', 'rejected'] as const;

describe('policy.simulate pages start their index walk at the cursor', () => {
  const SESSIONS = 9000;
  let t: ManageRelay;

  beforeAll(async () => {
    t = await startManageRelay({}, { relay: { eventRing: 100 } });
    // 27,000 events, 18,000 of kinds the replay reads (4 pages), ten per millisecond (ties on `at`)
    await recordSessions(t, SESSIONS, { helo: true, advanceEvery: 3 });
  }, 60_000);

  afterAll(async () => {
    await t?.stop();
  });

  it('every page after the first is a range of the (at) index from the cursor, without a sort', async () => {
    const admin = await t.admin();
    const { config } = await admin.call('config.get', {});
    type Db = { prepare(sql: string): { all(...a: unknown[]): { detail: string }[] } };
    const h = t.relay.history as unknown as { stmt(sql: string): { all(...a: unknown[]): unknown }; db: Db; page(...a: unknown[]): unknown };
    const origStmt = h.stmt;
    const origPage = h.page;
    const calls: { after: { at: number; id: number } | null; sql: string; args: unknown[] }[] = [];
    let after: { at: number; id: number } | null = null;
    h.page = function (...a: unknown[]) {
      after = a[2] as typeof after;
      return origPage.apply(t.relay.history, a);
    };
    h.stmt = function (sql: string) {
      const st = origStmt.call(t.relay.history, sql);
      if (!sql.startsWith('SELECT json FROM events')) return st;
      return {
        all: (...args: unknown[]) => {
          calls.push({ after, sql, args });
          return st.all(...args);
        },
      };
    };
    let sim;
    try {
      sim = await admin.call('policy.simulate', { config, hours: 1 }, 30_000);
    } finally {
      h.stmt = origStmt;
      h.page = origPage;
    }
    expect(sim.replayed.connections).toBe(SESSIONS);

    const paged = calls.filter((c) => c.after !== null);
    expect(paged.length).toBeGreaterThanOrEqual(3);
    for (const { sql, args, after: cursor } of paged) {
      const n = sql.split('?').length - 1;
      expect(args).toHaveLength(n);
      const plan = h.db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all(...Array.from({ length: n }, () => 0))
        .map((r) => r.detail)
        .join('; ');
      // the (at) index walked in (at, id) order from its lower bound, stopping after the page's rows
      expect(plan, sql).toMatch(/USING (COVERING )?INDEX events_at \(at>\? AND at<\?\)/);
      expect(plan, sql).not.toMatch(/TEMP B-TREE/);
      // and that lower bound is the cursor's `at`, not the start of the window
      const lower = sql.slice(0, sql.indexOf('at >= ?')).split('?').length - 1;
      expect(sql.match(/at >= \?/g), sql).toHaveLength(1);
      expect(args[lower], sql).toBe(cursor!.at);
    }
  });
});

describe('EventHistory.page: every event once, in (at, id) order', () => {
  const tiedHistory = tiedHistories();

  it('ties on `at` across page boundaries, ids out of `at` order, kinds and window respected', () => {
    const { h, events } = tiedHistory();
    const T = TIED_T;
    const from = T + 100;
    const to = T + 900;
    const want = events
      .filter((e) => e.at >= from && e.at < to && (KINDS as readonly string[]).includes(e.kind))
      .sort((a, b) => a.at - b.at || a.id - b.id)
      .map((e) => e.id);
    expect(want.length).toBeGreaterThan(500);
    // the ties span page boundaries
    expect(new Set(events.map((e) => e.at)).size).toBeLessThan(events.length / 3);

    for (const limit of [1, 7, 64, 1000]) {
      const got: number[] = [];
      let after: { at: number; id: number } | null = null;
      for (;;) {
        const page = h.page(from, to, after, KINDS, limit);
        got.push(...page.map((e) => e.id));
        if (page.length < limit) break;
        const last = page[page.length - 1]!;
        after = { at: last.at, id: last.id };
      }
      expect(got, `limit ${limit}`).toEqual(want);
    }

    // starting after the cut policy.simulate makes for its cap: exactly the newest `skip` events
    const cut = h.cutAfter(from, to, KINDS, 100)!;
    const rest: number[] = [];
    let after: { at: number; id: number } | null = cut;
    for (;;) {
      const page = h.page(from, to, after, KINDS, 30);
      rest.push(...page.map((e) => e.id));
      if (page.length < 30) break;
      after = { at: page.at(-1)!.at, id: page.at(-1)!.id };
    }
    expect(rest).toEqual(want.slice(-100));
  });
});
