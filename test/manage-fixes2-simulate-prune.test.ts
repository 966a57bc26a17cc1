/**
 * policy.simulate reads the history in pages, a turn of the event loop each; the retention prune (a timer) may run
 * between two pages and delete events of the replayed span the replay has not read yet. Those were stored when the
 * replay began and are missing from it: the result must say so (`pruned: true` and a caveat), as events.query does,
 * and must not when what was deleted lies behind what the replay had read.
 *
 * Against a real relay (its history on disk, its fake clock, events.retentionDays 7) and a real wss client: 5,000
 * sessions (10,000 events, ten pages of 1,000) recorded at T0 ("old"), 5,000 two days later ("new"); a replay of the last
 * 72 hours reads them all. After page n of the replay the clock moves on to T0 + 8 days and the history prunes (as its
 * timer does), deleting exactly the old events.
 */
import { describe, expect, it } from 'vitest';
import { manageRelayPerTest, type ManageRelay } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

const startRelay = manageRelayPerTest();
const OLD = 5000;
const NEW = 5000;
const DAY = 86_400_000;

async function relayWithHistory(): Promise<{ t: ManageRelay; t0: number }> {
  const t = await startRelay({}, { relay: { eventRing: 100 } });
  const t0 = t.clock.now();
  for (let i = 0; i < OLD; i++) {
    t.relay.bus.emit({ kind: 'connect', sessionId: `old${i}`, ip: '192.0.2.1', port: 25 });
    t.relay.bus.emit({ kind: 'disconnect', sessionId: `old${i}`, ip: '192.0.2.1', messages: 0 });
  }
  t.clock.advance(2 * DAY);
  for (let i = 0; i < NEW; i++) {
    t.relay.bus.emit({ kind: 'connect', sessionId: `new${i}`, ip: '192.0.2.2', port: 25 });
    t.relay.bus.emit({ kind: 'disconnect', sessionId: `new${i}`, ip: '192.0.2.2', messages: 0 });
  }
  await waitFor(() => t.relay.history.storedEvents >= 2 * (OLD + NEW), 'the events to be stored', 20_000);
  return { t, t0 };
}

/** Run a replay of the last 72 hours; right after its page `n` (none: never) the retention prunes the old events. */
async function replayPrunedAfterPage(t: ManageRelay, t0: number, n: number | null) {
  const admin = await t.admin();
  const { config } = await admin.call('config.get', {});
  const h = t.relay.history as unknown as Record<'page', (...a: unknown[]) => unknown>;
  const orig = h.page;
  let pages = 0;
  let deleted = 0;
  let largest = 0;
  h.page = function (...a: unknown[]) {
    largest = Math.max(largest, a[4] as number);
    const r = orig.apply(t.relay.history, a);
    if (++pages === n) {
      t.clock.t = t0 + 8 * DAY;
      const before = t.relay.history.storedEvents;
      t.relay.history.prune();
      deleted = before - t.relay.history.storedEvents;
    }
    return r;
  };
  try {
    const sim = await admin.call('policy.simulate', { config, hours: 72 }, 30_000);
    return { sim, pages, deleted, largest };
  } finally {
    h.page = orig;
  }
}

const caveat = (caveats: string[]) => caveats.filter((c) => /retention/.test(c));

describe('policy.simulate: the retention prunes between two of its pages', () => {
  it('old events it had not read yet are deleted: pruned, and a caveat', async () => {
    const { t, t0 } = await relayWithHistory();
    const { sim, pages, deleted } = await replayPrunedAfterPage(t, t0, 1);
    expect(deleted).toBe(2 * OLD);
    expect(pages).toBeGreaterThan(2);
    expect(sim.pruned).toBe(true);
    expect(caveat(sim.caveats)).toHaveLength(1);
    // what it missed: the old sessions after its first page
    expect(sim.replayed.connections).toBeLessThan(OLD + NEW);
  });

  it('the prune deletes only what it had read already: no pruned, no caveat, every session replayed', async () => {
    const { t, t0 } = await relayWithHistory();
    // pages 1 to 10 are the old events, page 11 the first new ones
    const { sim, pages, deleted } = await replayPrunedAfterPage(t, t0, 11);
    expect(deleted).toBe(2 * OLD);
    expect(pages).toBeGreaterThan(11);
    expect(sim.pruned).toBeUndefined();
    expect(caveat(sim.caveats)).toEqual([]);
    expect(sim.replayed.connections).toBe(OLD + NEW);
  });

  it('no prune: no pruned, no caveat; pages of at most 1,000 events (the most an SMTP command waits for a replay)', async () => {
    const { t, t0 } = await relayWithHistory();
    const { sim, largest } = await replayPrunedAfterPage(t, t0, null);
    // 5,000 made every SMTP command wait up to ~50 ms per page: the soak test's 30 msg/s fell to 13 during a replay
    expect(largest).toBe(1000);
    expect(sim.pruned).toBeUndefined();
    expect(caveat(sim.caveats)).toEqual([]);
    expect(sim.replayed.connections).toBe(OLD + NEW);
  });
});
