/**
 * policy.simulate reads the history in pages, as events.subscribe's backlog and events.query do; all of them take
 * turns of the event loop through one scheduler (PageTurns in relay/manage/methods.ts): one page of one scan per turn,
 * in the order asked. A simulation that yielded with a setImmediate of its own ran its pages in the same turns as the
 * other scans' pages (two pages back to back in one turn, more with more scans).
 *
 * Against a real relay (events recorded through its bus and stored by its history) with real wss clients: a CIDR
 * events.query that matches nothing and a policy.simulate run at once; every page read is stamped with a count of
 * setImmediate ticks (each tick a turn of the event loop, as in test/manage-scan-yield.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordSessions, startManageRelay, type ManageRelay } from './helpers/wss-client.ts';

const SESSIONS = 20_000;

let t: ManageRelay;

beforeAll(async () => {
  t = await startManageRelay({}, { relay: { eventRing: 100 } });
  // 40,000 events of the kinds the replay reads (8 pages of a simulation, 16 of a query)
  await recordSessions(t, SESSIONS);
}, 60_000);

afterAll(async () => {
  await t?.stop();
});

/** setImmediate ticks: each one is a turn of the event loop */
let ticks = 0;
function startTicking(): () => void {
  let on = true;
  const tick = () => {
    if (!on) return;
    ticks++;
    setImmediate(tick);
  };
  setImmediate(tick);
  return () => {
    on = false;
  };
}

describe('policy.simulate takes its turns with the other history scans', () => {
  it('a simulation and a query at once: one page per event-loop turn, the two taking turns page by page', async () => {
    const viewer = await t.admin();
    const admin = await t.admin();
    const { config } = await admin.call('config.get', {});

    const reads: { scan: 'query' | 'simulate'; tick: number }[] = [];
    const h = t.relay.history as unknown as Record<'query' | 'page', (...a: unknown[]) => unknown>;
    const orig = { query: h.query, page: h.page };
    h.query = function (...a: unknown[]) {
      reads.push({ scan: 'query', tick: ticks });
      return orig.query.apply(t.relay.history, a);
    };
    h.page = function (...a: unknown[]) {
      reads.push({ scan: 'simulate', tick: ticks });
      return orig.page.apply(t.relay.history, a);
    };
    const stop = startTicking();
    try {
      const [q, sim] = await Promise.all([
        viewer.call('events.query', { ip: '198.51.100.0/24' }, 30_000),
        admin.call('policy.simulate', { config, hours: 1 }, 30_000),
      ]);
      expect(q.events).toEqual([]);
      expect(sim.replayed.connections).toBe(SESSIONS);
    } finally {
      stop();
      h.query = orig.query;
      h.page = orig.page;
    }

    const of = (scan: string) => reads.filter((r) => r.scan === scan);
    expect(of('query').length).toBeGreaterThan(10);
    expect(of('simulate').length).toBeGreaterThan(5);
    // never two pages in one turn, whichever scans they belong to
    for (let i = 1; i < reads.length; i++) {
      expect(reads[i]!.tick, `${reads[i]!.scan} page read in the same event-loop turn as the ${reads[i - 1]!.scan} page before it`).toBeGreaterThan(reads[i - 1]!.tick);
    }
    // while both run, they take turns: query, simulate, query, simulate...
    const scans = reads.map((r) => r.scan);
    const from = Math.max(scans.indexOf('query'), scans.indexOf('simulate'));
    const to = Math.min(scans.lastIndexOf('query'), scans.lastIndexOf('simulate'));
    expect(to - from).toBeGreaterThan(8);
    for (let i = from + 1; i <= to; i++) expect(scans[i], `page ${i}`).not.toBe(scans[i - 1]);
  });
});
