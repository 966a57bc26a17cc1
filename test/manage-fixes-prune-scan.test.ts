/**
 * Retention pruning while a history scan is under way. events.subscribe's backlog and events.query read the stored
 * history a page per turn of the event loop; the retention prune (a timer) may run between two pages and delete rows
 * the scan has not read yet. Those events were stored when the call began and are missing from its answer: the answer
 * must say so (events.subscribe: `truncated`; events.query: `pruned`), and must not when what was deleted lies outside
 * what the scan still had to read.
 *
 * Against a real relay (its history on disk, its fake clock, events.retentionDays 7) and a real wss client: 5,000
 * events recorded at T0 ("old"), 5,000 two days later ("new"); between two pages of the scan the clock moves on to
 * T0 + 8 days and the history prunes (as its timer does), deleting exactly the old ones.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import { EventHistory } from '../relay/store/history.ts';
import { manageRelayPerTest, type ManageRelay } from './helpers/wss-client.ts';
import { waitFor } from './helpers/wait.ts';

const startRelay = manageRelayPerTest();
const OLD = 5000;
const NEW = 5000;
const DAY = 86_400_000;

async function relayWithHistory(): Promise<{ t: ManageRelay; t0: number; lastOld: number }> {
  const t = await startRelay({}, { relay: { eventRing: 100, manageLimits: { backlogMax: 20_000 } } });
  const t0 = t.clock.now();
  for (let i = 0; i < OLD; i++) t.relay.bus.emit({ kind: 'connect', sessionId: `old${i}`, ip: '192.0.2.1', port: 25 });
  const lastOld = t.relay.bus.lastId;
  t.clock.advance(2 * DAY);
  for (let i = 0; i < NEW; i++) t.relay.bus.emit({ kind: 'connect', sessionId: `new${i}`, ip: '192.0.2.2', port: 25 });
  await waitFor(() => t.relay.history.storedEvents >= OLD + NEW, 'the events to be stored', 20_000);
  return { t, t0, lastOld };
}

/** Right after page `n` of a history read method has been read, the retention prune deletes the old events. */
function pruneAfterPage(t: ManageRelay, t0: number, method: 'rangeDesc' | 'query', n: number): { pages: () => number; pruned: () => boolean; restore: () => void } {
  const h = t.relay.history as unknown as Record<string, (...a: unknown[]) => unknown>;
  const orig = h[method]!;
  let pages = 0;
  let pruned = false;
  h[method] = function (...a: unknown[]) {
    const r = orig.apply(t.relay.history, a);
    if (++pages === n) {
      t.clock.t = t0 + 8 * DAY;
      const before = t.relay.history.storedEvents;
      t.relay.history.prune();
      pruned = t.relay.history.storedEvents === before - OLD;
    }
    return r;
  };
  return { pages: () => pages, pruned: () => pruned, restore: () => void (h[method] = orig) };
}

const consecutive = (events: RelayEvent[]) => events.every((e, i) => i === 0 || e.id === events[i - 1]!.id + 1);

describe('events.subscribe: the retention prunes between two pages of its backlog', () => {
  it('old events it had not read yet are deleted: the backlog says truncated, and is still one piece up to lastId', async () => {
    const { t, t0, lastOld } = await relayWithHistory();
    const c = await t.admin();
    const w = pruneAfterPage(t, t0, 'rangeDesc', 2);
    let sub;
    try {
      sub = await c.call('events.subscribe', { sinceId: 0 }, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pruned()).toBe(true);
    expect(sub.truncated).toBe(true);
    expect(sub.backlog.length).toBeGreaterThan(NEW);
    expect(sub.backlog.length).toBeLessThan(OLD + NEW);
    expect(consecutive(sub.backlog)).toBe(true);
    expect(sub.backlog.at(-1)!.id).toBe(sub.lastId);
    // it read no page below what the prune deleted
    expect(sub.backlog[0]!.id).toBeLessThanOrEqual(lastOld + 1);
  });

  it('what the prune deleted lies below sinceId: not truncated, every event since sinceId', async () => {
    const { t, t0, lastOld } = await relayWithHistory();
    const c = await t.admin();
    const sinceId = lastOld + 1000;
    const w = pruneAfterPage(t, t0, 'rangeDesc', 1);
    let sub;
    try {
      sub = await c.call('events.subscribe', { sinceId }, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pages()).toBeGreaterThan(1);
    expect(w.pruned()).toBe(true);
    expect(sub.truncated).toBe(false);
    expect(sub.backlog[0]!.id).toBe(sinceId + 1);
    expect(sub.backlog.at(-1)!.id).toBe(sub.lastId);
    expect(consecutive(sub.backlog)).toBe(true);
  });
});

describe('events.query: the retention prunes between two of its pages', () => {
  it('newest first: the old events it had not read yet are deleted, the answer says pruned', async () => {
    const { t, t0 } = await relayWithHistory();
    const c = await t.admin();
    const w = pruneAfterPage(t, t0, 'query', 2);
    let r;
    try {
      r = await c.call('events.query', { limit: 10_000 }, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pruned()).toBe(true);
    expect(r.pruned).toBe(true);
    expect(r.events.length).toBeLessThan(OLD + NEW);
    expect(r.more).toBe(false);
  });

  it('oldest first by CIDR: the old events after its first page are deleted, the answer says pruned', async () => {
    const { t, t0 } = await relayWithHistory();
    const c = await t.admin();
    const w = pruneAfterPage(t, t0, 'query', 1);
    let r;
    try {
      r = await c.call('events.query', { ip: '192.0.2.0/24', order: 'asc', limit: 10_000 }, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pruned()).toBe(true);
    expect(r.pruned).toBe(true);
    expect(r.events.length).toBeLessThan(OLD + NEW);
  });

  it('a range that begins after what the prune deleted: nothing is missing, no pruned', async () => {
    const { t, t0 } = await relayWithHistory();
    const c = await t.admin();
    const w = pruneAfterPage(t, t0, 'query', 1);
    let r;
    try {
      r = await c.call('events.query', { from: t0 + DAY, order: 'asc', limit: 10_000 }, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pages()).toBeGreaterThan(1);
    expect(w.pruned()).toBe(true);
    expect(r.pruned).toBeUndefined();
    expect(r.events).toHaveLength(NEW);
  });

  it('oldest first, past the deleted events already: nothing is missing, no pruned', async () => {
    const { t, t0, lastOld } = await relayWithHistory();
    const c = await t.admin();
    // starts just before the new events (the cursor is the last old one), so the old ones are behind it
    const w = pruneAfterPage(t, t0, 'query', 1);
    let r;
    try {
      r = await c.call('events.query', { cursor: lastOld - 10, order: 'asc', limit: 10_000 }, 30_000);
    } finally {
      w.restore();
    }
    expect(w.pages()).toBeGreaterThan(1);
    expect(w.pruned()).toBe(true);
    expect(r.pruned).toBeUndefined();
    expect(r.events.slice(0, 10).map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => lastOld - 9 + i));
    expect(r.events).toHaveLength(NEW + 10);
  });
});

describe('EventHistory.pruned: what the prunes deleted, for scans under way', () => {
  it('counts the prune steps that deleted rows and bounds what they deleted, by retention and by the size bound', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-pruned-'));
    try {
      let now = 100 * DAY;
      const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), now: () => now, maxBytes: 1024 ** 3, log: () => {} });
      expect(h.pruned).toMatchObject({ prunes: 0, maxId: 0 });
      // ids rise with `at`, except ids 901-1000, recorded after the clock went back a day
      const at = (id: number) => (id <= 900 ? now - 10 * DAY + id * 600_000 : now - 11 * DAY + id);
      h.load(Array.from({ length: 1000 }, (_, k) => ({ id: k + 1, at: at(k + 1), kind: 'connect', sessionId: `s${k}`, ip: '192.0.2.1' }) as RelayEvent));
      h.prune();
      // 7 days: everything older than now - 7 days (ids 1-431), ids 901-1000 included
      const left = h.query({ order: 'asc', limit: 1000 }).events;
      const gone = Array.from({ length: 1000 }, (_, k) => k + 1).filter((id) => !left.some((e) => e.id === id));
      expect(gone.length).toBeGreaterThan(100);
      expect(h.pruned).toEqual({ prunes: 1, maxId: Math.max(...gone), maxAt: Math.max(...gone.map(at)) });
      expect(h.pruned.maxId).toBe(1000);
      expect(gone).toHaveLength(431 + 100);
      // nothing more to delete: the mark stays
      h.prune();
      expect(h.pruned.prunes).toBe(1);
      h.close();

      // the size bound deletes the oldest: their highest id and `at`
      const small = EventHistory.open({ file: path.join(dir, 'small.sqlite'), now: () => now, maxBytes: 64 * 1024, log: () => {} });
      small.load(Array.from({ length: 5000 }, (_, k) => ({ id: k + 1, at: now - 1000 + k, kind: 'connect', sessionId: `s${k}`, ip: '198.51.100.1' }) as RelayEvent));
      small.prune();
      const first = small.query({ order: 'asc', limit: 1 }).events[0]!;
      expect(first.id).toBeGreaterThan(1);
      // (in one or more slices: the size bound takes a tenth of what is left per step)
      expect(small.pruned).toMatchObject({ maxId: first.id - 1, maxAt: now - 1000 + first.id - 2 });
      expect(small.pruned.prunes).toBeGreaterThanOrEqual(1);
      small.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
