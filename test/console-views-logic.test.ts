/**
 * Pure logic of the trusted-groups and clients views (renderer/src/views/parts): address validation as typed,
 * expiry presets and an entry's expiry in words; the one list of queries refetched after a change; and what the live
 * view says about a reconnect's backlog (the live store's catch-up note, and the gaps of a backlog the relay cut).
 */
import fs from 'node:fs';
import path from 'node:path';
import { QueryClient } from '@tanstack/react-query';
import { describe, expect, it } from 'vitest';
import { fmtTime } from '../renderer/src/components/format.ts';
import { gapNotice } from '../renderer/src/state/gaps.ts';
import { LiveStore, MAX_GAPS } from '../renderer/src/state/live.ts';
import { RELAY_STATE_QUERIES, refetchRelayState } from '../renderer/src/state/refetch.ts';
import { checkAddress } from '../renderer/src/views/parts/address.ts';
import { expiryFor, expiryState } from '../renderer/src/views/parts/expiry.ts';
import { isMethodName } from '../shared/protocol.ts';
import { syntheticEvents } from './e2e/synthetic.ts';

const NOW = Date.parse('2026-11-27T12:00:00Z');

describe('checkAddress', () => {
  it('accepts what people type and says what will be stored', () => {
    expect(checkAddress(' 192.0.2.7 ', [])).toMatchObject({ state: 'ok', text: '192.0.2.7', covers: 'one address', duplicate: false });
    expect(checkAddress('192.0.2.0 / 24', [])).toMatchObject({ state: 'ok', text: '192.0.2.0/24', covers: '256 addresses' });
    expect(checkAddress('192.0.2.10-192.0.2.20', [])).toMatchObject({ state: 'ok', covers: '11 addresses' });
    expect(checkAddress('2001:db8::/48', [])).toMatchObject({ state: 'ok', covers: 'an IPv6 /48 network' });
    expect(checkAddress('::ffff:192.0.2.1', [])).toMatchObject({ state: 'ok', text: '192.0.2.1' });
  });
  it('refuses bad input with the shared parser\'s words', () => {
    expect(checkAddress('', [])).toEqual({ state: 'empty' });
    const a = checkAddress('192.0.2.1/24', []);
    expect(a.state).toBe('invalid');
    expect(a.state === 'invalid' && a.error).toMatch(/host bits set; did you mean 192.0.2.0\/24/);
    const b = checkAddress('192.168.010.1', []);
    expect(b.state === 'invalid' && b.error).toMatch(/leading zeros/);
  });
  it('notices an address already in the group, in any spelling', () => {
    expect(checkAddress('2001:DB8:0::1', ['2001:db8::1'])).toMatchObject({ state: 'ok', duplicate: true });
  });
});

describe('expiry', () => {
  it('turns presets into ISO instants', () => {
    expect(expiryFor('1h', '', NOW)).toEqual({ ok: true, expiresAt: '2026-11-27T13:00:00.000Z' });
    expect(expiryFor('1d', '', NOW)).toEqual({ ok: true, expiresAt: '2026-11-28T12:00:00.000Z' });
    expect(expiryFor('1w', '', NOW)).toEqual({ ok: true, expiresAt: '2026-12-04T12:00:00.000Z' });
    expect(expiryFor('never', '', NOW)).toEqual({ ok: true, expiresAt: null });
  });
  it('takes a local date and refuses the past', () => {
    const r = expiryFor('date', '2030-01-02T03:04', NOW);
    expect(r.ok).toBe(true);
    expect(r.ok && Date.parse(r.expiresAt!)).toBe(new Date(2030, 0, 2, 3, 4).getTime());
    expect(expiryFor('date', '2020-01-01T00:00', NOW)).toMatchObject({ ok: false });
    expect(expiryFor('date', '', NOW)).toMatchObject({ ok: false });
  });
  it('says how an entry stands', () => {
    expect(expiryState(null, NOW)).toEqual({ expired: false, text: 'never expires', soon: false });
    expect(expiryState('2026-11-27T09:00:00Z', NOW)).toEqual({ expired: true, text: 'expired 3 h ago', soon: false });
    expect(expiryState('2026-11-27T17:00:00Z', NOW)).toEqual({ expired: false, text: 'expires in 5 h', soon: true });
    expect(expiryState('2026-12-27T17:00:00Z', NOW)).toMatchObject({ expired: false, soon: false });
  });
});

describe('what is refetched after a change', () => {
  it('is one list of relay methods, and exactly those queries (any params) are marked stale', () => {
    expect(RELAY_STATE_QUERIES.every((m) => isMethodName(m))).toBe(true);
    expect([...RELAY_STATE_QUERIES].sort()).toEqual(['audit.list', 'clients.list', 'config.get', 'config.history', 'queue.list', 'stats.get']);
    const qc = new QueryClient();
    const keys: unknown[][] = [
      ...RELAY_STATE_QUERIES.map((m) => [m, {}]),
      ['config.get', { revision: 3 }],
      ['clients.list', { ip: '192.0.2.7', limit: 1 }],
      ['events.query', { sessionId: 's1', order: 'asc', limit: 1000 }],
      ['policy.simulate', { hours: 24 }],
      ['profiles'],
    ];
    for (const k of keys) qc.setQueryData(k, { seeded: true });
    refetchRelayState(qc);
    const stale = qc.getQueryCache().getAll().filter((q) => q.state.isInvalidated).map((q) => JSON.stringify(q.queryKey));
    expect(stale.sort()).toEqual(keys.slice(0, RELAY_STATE_QUERIES.length + 2).map((k) => JSON.stringify(k)).sort());
    // a narrower list for a change that cannot touch the config
    const qc2 = new QueryClient();
    for (const k of keys) qc2.setQueryData(k, { seeded: true });
    refetchRelayState(qc2, ['queue.list']);
    expect(qc2.getQueryCache().getAll().filter((q) => q.state.isInvalidated).map((q) => q.queryKey[0])).toEqual(['queue.list']);
  });

  it('is written once: no other list in the renderer names the config queries to refetch', () => {
    const root = path.resolve(import.meta.dirname, '../renderer/src');
    const files = fs.readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => /\.tsx?$/.test(f));
    const copies: string[] = [];
    for (const f of files) {
      if (f === path.join('state', 'refetch.ts')) continue;
      const src = fs.readFileSync(path.join(root, f), 'utf8');
      // an array literal that names config.get and another of the refetched queries is a copy of the list
      for (const m of src.matchAll(/\[[^[\]]*\]/g)) {
        const names = RELAY_STATE_QUERIES.filter((q) => m[0].includes(`'${q}'`));
        if (names.includes('config.get') && names.length > 1) copies.push(`${f}: ${m[0].replace(/\s+/g, ' ')}`);
      }
    }
    expect(copies).toEqual([]);
    // and the hooks (mutations, config.changed) and the trust action use it rather than lists of their own
    for (const f of ['hooks.ts', 'state/trust.ts']) expect(fs.readFileSync(path.join(root, f), 'utf8')).toMatch(/refetchRelayState\(qc\b/);
  });
});

describe("the live store's catch-up note (a resync batch)", () => {
  /** frames on demand: nothing is applied until the test says so */
  const frames = () => {
    let fns: (() => void)[] = [];
    return { request: (fn: () => void) => void fns.push(fn), run: () => fns.splice(0).forEach((f) => f()) };
  };

  it('notes the backlog replayed onto the stream it holds after a reconnect: how many, and when', () => {
    const f = frames();
    let wall = NOW;
    const s = new LiveStore(1000, f, () => 0, () => wall);
    // the first connection's backlog starts the stream: nothing was caught up
    s.ingest({ events: syntheticEvents(1, 10), resync: true });
    s.ingest({ events: syntheticEvents(11, 5) });
    f.run();
    expect(s.lastCatchUp).toBeNull();
    // back after a drop: the events logged meanwhile come as one resync batch
    wall = NOW + 60_000;
    s.ingest({ events: syntheticEvents(16, 7), resync: true });
    f.run();
    expect(s.lastCatchUp).toEqual({ events: 7, at: NOW + 60_000 });
    expect(s.size).toBe(22);
    // live batches after it leave the note as it is; the next reconnect replaces it
    s.ingest({ events: syntheticEvents(23, 3) });
    wall = NOW + 120_000;
    s.ingest({ events: syntheticEvents(26, 2), resync: true });
    expect(s.lastCatchUp).toEqual({ events: 2, at: NOW + 120_000 });
  });

  it('is no catch-up when the backlog starts another stream (a switch to another relay, a fresh history), and goes with the old stream', () => {
    const f = frames();
    const s = new LiveStore(1000, f, () => 0, () => NOW);
    s.ingest({ events: syntheticEvents(1, 10) });
    s.ingest({ events: syntheticEvents(11, 4), resync: true });
    expect(s.lastCatchUp).toEqual({ events: 4, at: NOW });
    // another relay: the core's empty reset batch at the switch, then the new relay's backlog
    s.ingest({ events: [], reset: true });
    expect(s.lastCatchUp).toBeNull();
    s.ingest({ events: syntheticEvents(1, 6), resync: true });
    expect(s.lastCatchUp).toBeNull();
    // a fresh history: its backlog carries the reset itself
    s.ingest({ events: syntheticEvents(1, 3), resync: true, reset: true });
    f.run();
    expect(s.lastCatchUp).toBeNull();
    expect(s.toArray().map((e) => e.id)).toEqual([1, 2, 3]);
  });
});

describe("the live store's gaps (a backlog the relay cut: more than 10,000 events since the console's last one)", () => {
  const immediate = { request: (fn: () => void) => fn() };

  it('keeps the gaps a resync batch reports, with the stream: across reconnects, not past a switch or a fresh history', () => {
    const s = new LiveStore(50_000, immediate, () => 0, () => NOW);
    s.ingest({ events: syntheticEvents(1, 10, NOW - 60_000), resync: true });
    s.ingest({ events: syntheticEvents(11, 5, NOW - 50_000) });
    expect(s.gaps).toEqual([]);
    // a small reconnect: no gap
    s.ingest({ events: syntheticEvents(16, 4, NOW - 40_000), resync: true });
    expect(s.gaps).toEqual([]);
    // a long drop: ids 20..12,019 left out, 12,020 on sent
    const away = syntheticEvents(12_020, 10_000, NOW - 10_000);
    const gap = { afterId: 19, from: NOW - 40_000 + 0.3, beforeId: 12_020, to: NOW - 10_000 };
    s.ingest({ events: away, resync: true, gaps: [gap] });
    expect(s.gaps).toEqual([gap]);
    expect(s.size).toBe(10_019);
    // live batches leave them; the next cut reconnect adds its own
    s.ingest({ events: syntheticEvents(22_020, 3, NOW) });
    const later = { afterId: 22_022, from: NOW, beforeId: 40_000, to: NOW + 1000 };
    s.ingest({ events: syntheticEvents(40_000, 10_000, NOW + 1000), resync: true, gaps: [later] });
    expect(s.gaps).toEqual([gap, later]);
    // another relay (the core's empty reset batch): they go with the old stream
    s.ingest({ events: [], reset: true });
    expect(s.gaps).toEqual([]);
    // its first backlog, cut: the gap is its older events, and it belongs to the new stream
    const older = { afterId: 0, from: null, beforeId: 51, to: NOW };
    s.ingest({ events: syntheticEvents(51, 10_000, NOW), resync: true, gaps: [older] });
    expect(s.gaps).toEqual([older]);
    // a fresh history: its backlog carries the reset, and gaps only if it was cut itself
    s.ingest({ events: syntheticEvents(1, 3, NOW), resync: true, reset: true });
    expect(s.gaps).toEqual([]);
    // and at most MAX_GAPS, the newest
    for (let i = 0; i < MAX_GAPS + 3; i++) s.ingest({ events: syntheticEvents(100 + i * 10, 1, NOW), resync: true, gaps: [{ afterId: 90 + i * 10, from: NOW, beforeId: 100 + i * 10, to: NOW }] });
    expect(s.gaps).toHaveLength(MAX_GAPS);
    expect(s.gaps.at(-1)!.beforeId).toBe(100 + (MAX_GAPS + 2) * 10);
  });

  it('says which events are not shown, why, and where they are', () => {
    // local noon: the times below are on the same local day, whatever the time zone
    const NOW = new Date(2026, 10, 27, 12, 0, 0).getTime();
    const from = NOW - 3_600_000;
    const to = NOW - 60_000;
    const away = gapNotice({ afterId: 41, from, beforeId: 12_387, to }, 7, NOW);
    expect(away.whileAway).toBe(true);
    expect(away.text).toBe(
      `Events from ${fmtTime(from)} to ${fmtTime(to)} are not shown here: more than 10,000 happened while the console was away, and the relay sends at most 10,000 when the console reconnects.`,
    );
    expect(away.where).toBe("They stay in the relay's event history for 7 days (the management protocol's events.query reads them); the console has no view of that history yet.");
    expect(away.detail).toBe("12,345 events (ids #42 to #12386) between the live view's event #41 and #12387.");
    // the retention not known yet: no number of days
    expect(gapNotice({ afterId: 41, from, beforeId: 12_387, to }, null, NOW).where).toMatch(/^They stay in the relay's event history \(/);
    // another day than today: with the date
    const d = new Date(from - 86_400_000);
    const day = `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    expect(gapNotice({ afterId: 1, from: from - 86_400_000, beforeId: 20_000, to }, 7, NOW).text).toMatch(new RegExp(`^Events from ${day} ${fmtTime(from)} to ${fmtTime(to)} are`));
    // both in the same second: one time
    expect(gapNotice({ afterId: 1, from: to + 100, beforeId: 20_000, to: to + 900 }, 7, NOW).text).toMatch(new RegExp(`^Events at ${fmtTime(to)} are not shown here: more than 10,000`));
    // a stream's first backlog, cut: its older events, not "while away"
    const first = gapNotice({ afterId: 0, from: null, beforeId: 5001, to }, 7, NOW);
    expect(first.whileAway).toBe(false);
    expect(first.text).toBe(`Events before ${fmtTime(to)} are not shown here: the relay sends at most its newest 10,000 when the console connects.`);
    // a relay that told its limit (events.subscribe's backlogMax): the words use that number
    expect(gapNotice({ afterId: 41, from, beforeId: 12_387, to, backlogMax: 2500 }, 7, NOW).text).toBe(
      `Events from ${fmtTime(from)} to ${fmtTime(to)} are not shown here: more than 2,500 happened while the console was away, and the relay sends at most 2,500 when the console reconnects.`,
    );
    expect(gapNotice({ afterId: 0, from: null, beforeId: 5001, to, backlogMax: 2500 }, 7, NOW).text).toBe(
      `Events before ${fmtTime(to)} are not shown here: the relay sends at most its newest 2,500 when the console connects.`,
    );
  });
});
