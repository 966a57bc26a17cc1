/**
 * policy.simulate runs one replay at a time, in pages, a turn of the event loop each. A replay whose console closes
 * must stop at its next page (as events.query and events.subscribe's backlog do), and the next caller's replay, which
 * waits for it, must start then, not after the closed session's whole replay.
 *
 * Against a real relay (events recorded through its bus and stored by its history) with real wss clients: A starts a
 * replay and closes its socket after the replay's second page; B asks for a replay once A's socket is closed. Every
 * page read is stamped with whose replay it belongs to (a replay's first page starts at no cursor) and whether A's
 * session, as the relay sees it, had closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../relay/manage/session.ts';
import { recordSessions, startManageRelay, type ManageRelay } from './helpers/wss-client.ts';

const SESSIONS = 25_000;

let t: ManageRelay;

beforeAll(async () => {
  t = await startManageRelay({}, { relay: { eventRing: 100 } });
  // 50,000 events of the kinds the replay reads: 10 pages
  await recordSessions(t, SESSIONS);
}, 60_000);

afterAll(async () => {
  await t?.stop();
});

describe('policy.simulate stops when its session closes', () => {
  it('no page is read once the session is closed, and the next caller\'s replay starts', async () => {
    const a = await t.clientWithRole('viewer', 'sim-a');
    const b = await t.clientWithRole('viewer', 'sim-b');
    const { config } = await b.client.call('config.get', {});
    const sessions = (t.relay.manage as unknown as { sessions: Set<Session> }).sessions;
    const sessionA = [...sessions].find((s) => s.auth?.name === 'sim-a')!;
    expect(sessionA).toBeDefined();

    const h = t.relay.history as unknown as Record<'page', (...a: unknown[]) => unknown>;
    const orig = h.page;
    const reads: { run: number; aClosed: boolean }[] = [];
    let run = 0;
    h.page = function (...args: unknown[]) {
      if (args[2] === null) run++;
      reads.push({ run, aClosed: sessionA.closed });
      if (run === 1 && reads.length === 2) a.client.ws.terminate();
      return orig.apply(t.relay.history, args);
    };
    let sim;
    try {
      void a.client.request({ jsonrpc: '2.0', method: 'policy.simulate', params: { config, hours: 1 } }, 30_000).catch(() => {});
      await a.client.closed;
      sim = await b.client.call('policy.simulate', { config, hours: 1 }, 30_000);
    } finally {
      h.page = orig;
    }
    expect(sim.replayed.connections).toBe(SESSIONS);
    expect(sim.truncated).toBe(false);

    const ofA = reads.filter((r) => r.run === 1);
    const ofB = reads.filter((r) => r.run === 2);
    expect(ofA.length).toBeGreaterThanOrEqual(2);
    // A's replay read no page once its session was closed, so it did not read all its pages
    expect(ofA.filter((r) => r.aClosed)).toEqual([]);
    expect(ofA.length).toBeLessThan(ofB.length);
    // B's replay (every page of it) came after A's
    expect(reads.map((r) => r.run)).toEqual([...ofA.map(() => 1), ...ofB.map(() => 2)]);
    expect(ofB.length).toBeGreaterThanOrEqual(10);
  });

  it('a replay waiting its turn whose session closes reads nothing; the one after it runs', async () => {
    const a = await t.clientWithRole('viewer', 'sim-c');
    const w = await t.clientWithRole('viewer', 'sim-d');
    const b = await t.clientWithRole('viewer', 'sim-e');
    const { config } = await b.client.call('config.get', {});
    const h = t.relay.history as unknown as Record<'page', (...a: unknown[]) => unknown>;
    const orig = h.page;
    let runs = 0;
    let pages = 0;
    h.page = function (...args: unknown[]) {
      if (args[2] === null) runs++;
      pages++;
      // during A's replay, W asks for one (it waits for A's) and closes right after
      if (runs === 1 && pages === 2) {
        void w.client.request({ jsonrpc: '2.0', method: 'policy.simulate', params: { config, hours: 1 } }, 30_000).catch(() => {});
        // a close frame after the request, on the same stream: the relay reads the request first
        w.client.ws.close();
      }
      return orig.apply(t.relay.history, args);
    };
    try {
      const first = a.client.call('policy.simulate', { config, hours: 1 }, 30_000);
      await w.client.closed;
      const last = await b.client.call('policy.simulate', { config, hours: 1 }, 30_000);
      expect((await first).replayed.connections).toBe(SESSIONS);
      expect(last.replayed.connections).toBe(SESSIONS);
    } finally {
      h.page = orig;
    }
    // A's replay and B's: W's read no page
    expect(runs).toBe(2);
  });
});
