/**
 * The renderer's state modules in Node (no browser): the live event store (ring buffer, per-frame batching, session
 * index, starting over when a restarted relay begins its ids again), the incremental filtered view, the live filter,
 * and the rejection-spike detector.
 */
import { describe, expect, it } from 'vitest';
import type { RelayEvent } from '../../shared/events.ts';
import { compileFilter, EMPTY_FILTER } from '../../renderer/src/state/filter.ts';
import { FilteredView, LiveStore, type FrameScheduler } from '../../renderer/src/state/live.ts';
import { SpikeDetector } from '../../renderer/src/state/spike.ts';
import { kindLabel, summarize } from '../../renderer/src/state/summary.ts';
import { syntheticEvents } from './synthetic.ts';

function manualFrames(): FrameScheduler & { run(): void; pending: number } {
  let fns: (() => void)[] = [];
  return {
    request(fn) {
      fns.push(fn);
    },
    run() {
      const f = fns;
      fns = [];
      for (const x of f) x();
    },
    get pending() {
      return fns.length;
    },
  };
}

describe('LiveStore', () => {
  it('applies batches once per frame and notifies once', () => {
    const frames = manualFrames();
    const s = new LiveStore(100, frames);
    let notified = 0;
    s.subscribe(() => notified++);
    s.ingest({ events: syntheticEvents(1, 10) });
    s.ingest({ events: syntheticEvents(11, 10) });
    expect(frames.pending).toBe(1);
    expect(s.size).toBe(0);
    frames.run();
    expect(s.size).toBe(20);
    expect(notified).toBe(1);
    expect(s.at(0)!.id).toBe(1);
    expect(s.at(19)!.id).toBe(20);
  });

  it('keeps at most its cap, evicting the oldest, and indexes sessions', () => {
    const frames = manualFrames();
    const s = new LiveStore(50, frames);
    for (let i = 0; i < 120; i += 30) {
      s.ingest({ events: syntheticEvents(i, 30) });
      frames.run();
    }
    expect(s.size).toBe(50);
    expect(s.start).toBe(70);
    expect(s.at(69)).toBeUndefined();
    expect(s.toArray().map((e) => e.id)).toEqual(Array.from({ length: 50 }, (_, i) => 70 + i));
    // session burst14 = ids 70..74 (5 per session); burst13 (65..69) was evicted
    expect(s.session('burst14').map((e) => e.id)).toEqual([70, 71, 72, 73, 74]);
    expect(s.session('burst13')).toEqual([]);
    expect(s.toArray(80).length).toBe(10);
  });

  it('counts events the relay dropped and drops locally past the cap before a frame', () => {
    const frames = manualFrames();
    const s = new LiveStore(30, frames);
    s.ingest({ events: syntheticEvents(0, 40), dropped: 7 });
    expect(s.droppedByRelay).toBe(7);
    expect(s.droppedLocally).toBe(10);
    frames.run();
    expect(s.size).toBe(30);
    expect(s.at(s.end - 1)!.id).toBe(39);
  });
});

describe('LiveStore at the start of another stream (the core marks it reset: a fresh history, another relay)', () => {
  it('starts over with the new stream (resync backlog or live batch) instead of mixing two sets of ids', () => {
    const frames = manualFrames();
    const s = new LiveStore(1000, frames);
    const rows = new FilteredView(s, null);
    s.ingest({ events: syntheticEvents(1, 100) });
    frames.run();
    expect(s.toArray().map((e) => e.id)).toEqual(Array.from({ length: 100 }, (_, i) => 1 + i));
    const epoch = s.epoch;
    // the restarted relay (fresh history) replays its backlog from id 1: another stream, not more of the same
    const fresh = syntheticEvents(1, 12, Date.now() + 60_000);
    s.ingest({ events: fresh, resync: true, reset: true });
    frames.run();
    expect(s.toArray()).toEqual(fresh);
    expect(s.streamResets).toBe(1);
    expect(s.epoch).toBe(epoch + 1);
    expect(s.received).toBe(12);
    // the session index holds only the new stream's events (its session names may be reused too)
    expect(s.session('burst0')).toEqual(fresh.filter((e) => e.sessionId === 'burst0'));
    expect(rows.sync()).toBe(12);
    expect(rows.row(0)).toBe(fresh[11]);
    // and then it goes on as one stream
    s.ingest({ events: syntheticEvents(13, 5) });
    frames.run();
    expect(s.toArray().map((e) => e.id)).toEqual(Array.from({ length: 17 }, (_, i) => 1 + i));
    expect(s.streamResets).toBe(1);

    // a reset on a live batch, with old events still waiting for a frame
    s.ingest({ events: syntheticEvents(18, 30) });
    s.ingest({ events: syntheticEvents(3, 4), reset: true });
    frames.run();
    expect(s.toArray().map((e) => e.id)).toEqual([3, 4, 5, 6]);
    expect(s.streamResets).toBe(2);
  });

  it("keeps the new stream's queue events for messages the old relay accepted (same client address, new ids)", () => {
    // the spool survives a restart: the new relay goes on delivering the old one's messages, and its deferred events
    // for them carry the old sessions' client address. Starting over drops the old stream's events, not an address.
    const frames = manualFrames();
    const s = new LiveStore(1000, frames);
    const old = syntheticEvents(1, 18);
    s.ingest({ events: old });
    frames.run();
    const accepted = old.filter((e) => e.kind === 'accepted');
    const fresh: RelayEvent[] = [
      ...syntheticEvents(1, 6, Date.now() + 60_000).map((e) => ({ ...e, ip: '192.0.2.12', sessionId: `new-${e.sessionId}` })),
      ...accepted.map((e, i) => ({ id: 7 + i, at: Date.now() + 61_000, sessionId: e.sessionId, ip: e.ip, kind: 'deferred' as const, queueId: e.queueId, to: e.to, reason: '4.4.1 no MX', nextAttemptAt: Date.now() + 120_000 })),
    ];
    s.ingest({ events: fresh.slice(0, 4), resync: true, reset: true });
    s.ingest({ events: fresh.slice(4) });
    frames.run();
    expect(s.streamResets).toBe(1);
    expect(s.toArray()).toEqual(fresh);
    const rows = new FilteredView(s, null);
    rows.sync();
    expect(Array.from({ length: rows.length }, (_, i) => rows.row(i)!.id)).toEqual(fresh.map((e) => e.id).reverse());
  });

  it('starts over on a batch the core marks reset (another history), even when its ids have already passed ours', () => {
    const frames = manualFrames();
    const s = new LiveStore(1000, frames);
    const rows = new FilteredView(s, null);
    s.ingest({ events: syntheticEvents(1, 20) });
    frames.run();
    const epoch = s.epoch;
    // the restarted relay's fresh history has logged more than we held: its backlog from 0 goes past our newest id,
    // so the ids cannot tell; the core's reset mark does. Old events still waiting for a frame go too.
    s.ingest({ events: syntheticEvents(21, 5) });
    const fresh = syntheticEvents(30, 40, Date.now() + 60_000);
    s.ingest({ events: fresh, resync: true, reset: true });
    frames.run();
    expect(s.toArray()).toEqual(fresh);
    expect(s.streamResets).toBe(1);
    expect(s.epoch).toBe(epoch + 1);
    expect(s.received).toBe(40);
    expect(s.session('burst0')).toEqual([]);
    expect(rows.sync()).toBe(40);
    expect(rows.row(0)).toBe(fresh[39]);
    // then one stream again: no start-over without the mark on higher ids
    s.ingest({ events: syntheticEvents(70, 5) });
    frames.run();
    expect(s.size).toBe(45);
    expect(s.streamResets).toBe(1);

    // a reset with nothing in it yet (the new history had no events) still drops the old stream at once
    s.ingest({ events: [], resync: true, reset: true });
    frames.run();
    expect(s.size).toBe(0);
    expect(s.streamResets).toBe(2);
    s.ingest({ events: syntheticEvents(200, 3) });
    frames.run();
    expect(s.toArray().map((e) => e.id)).toEqual([200, 201, 202]);
  });

  it('a batch the core did not mark is more of the same stream, whatever its ids (the core decides, not the store)', () => {
    const frames = manualFrames();
    const s = new LiveStore(1000, frames);
    s.ingest({ events: syntheticEvents(1, 10) });
    s.ingest({ events: syntheticEvents(5, 2) });
    frames.run();
    expect(s.streamResets).toBe(0);
    expect(s.size).toBe(12);
  });

  it('does not start over for a stream that goes on: higher ids, gaps, empty batches, drop notices', () => {
    const frames = manualFrames();
    const s = new LiveStore(1000, frames);
    s.ingest({ events: syntheticEvents(1, 10) });
    s.ingest({ events: [], dropped: 5 });
    s.ingest({ events: syntheticEvents(16, 10), resync: true });
    s.ingest({ events: [] });
    frames.run();
    expect(s.size).toBe(20);
    expect(s.streamResets).toBe(0);
    expect(s.droppedByRelay).toBe(5);
    // after the user's clear, the next events are taken as they come (no start-over is counted)
    s.clear();
    s.ingest({ events: syntheticEvents(1, 3) });
    frames.run();
    expect(s.size).toBe(3);
    expect(s.streamResets).toBe(0);
  });
});

describe('FilteredView', () => {
  it('scans only new events, follows evictions, reads newest first and counts from a point', () => {
    const frames = manualFrames();
    const s = new LiveStore(100, frames);
    const rejected = new FilteredView(s, (e) => e.kind === 'rejected');
    const all = new FilteredView(s, null);
    s.ingest({ events: syntheticEvents(0, 100) });
    frames.run();
    const n = rejected.sync();
    const expected = s.toArray().filter((e) => e.kind === 'rejected');
    expect(n).toBe(expected.length);
    expect(rejected.row(0)).toBe(expected[expected.length - 1]);
    expect(all.sync()).toBe(100);
    expect(all.row(0)!.id).toBe(99);

    const mark = s.end;
    s.ingest({ events: syntheticEvents(100, 100) });
    frames.run();
    const n2 = rejected.sync();
    const expected2 = s.toArray().filter((e) => e.kind === 'rejected');
    expect(n2).toBe(expected2.length);
    expect(rejected.countFrom(mark)).toBe(expected2.filter((e) => e.id >= 100).length);
    expect(all.countFrom(mark)).toBe(100);
    for (let i = 0; i < n2; i++) expect(rejected.row(i)).toBe(expected2[expected2.length - 1 - i]);
  });
});

describe('live filter', () => {
  const ev = (over: Partial<RelayEvent> & Pick<RelayEvent, 'kind'>): RelayEvent => ({ id: 1, at: 0, sessionId: 's1', ip: '192.0.2.7', ...over }) as RelayEvent;
  const rej = ev({ kind: 'rejected', stage: 'mail', rule: 'limits.messagesPerHour', code: 450, text: '4.7.1 Too much mail', enforced: true } as never);
  const mon = ev({ kind: 'rejected', stage: 'mail', rule: 'checks.reverseDns', code: 550, text: '5.7.25 no PTR', enforced: false } as never);
  const mail = ev({ kind: 'mail', from: 'Sales@Example.org', ip: '2001:db8::5' } as never);

  it('matches IPs exactly, by CIDR or range, and by prefix while typing', () => {
    expect(compileFilter({ ...EMPTY_FILTER, ip: '192.0.2.7' })!(rej)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, ip: '192.0.2.70' })!(rej)).toBe(false);
    expect(compileFilter({ ...EMPTY_FILTER, ip: '192.0.2.0/24' })!(rej)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, ip: '192.0.2.8-192.0.2.20' })!(rej)).toBe(false);
    expect(compileFilter({ ...EMPTY_FILTER, ip: '2001:db8::/32' })!(mail)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, ip: '2001:DB8:0::5' })!(mail)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, ip: '192.0.' })!(rej)).toBe(true);
  });

  it('filters by text (case-insensitive, over the summary), kind, monitor and rejections only', () => {
    expect(compileFilter(EMPTY_FILTER)).toBeNull();
    expect(compileFilter({ ...EMPTY_FILTER, text: 'sales@example' })!(mail)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, text: 'too much' })!(rej)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, rejectionsOnly: true })!(mail)).toBe(false);
    expect(compileFilter({ ...EMPTY_FILTER, rejectionsOnly: true })!(mon)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, kind: 'monitor' })!(mon)).toBe(true);
    expect(compileFilter({ ...EMPTY_FILTER, kind: 'monitor' })!(rej)).toBe(false);
    expect(compileFilter({ ...EMPTY_FILTER, kind: 'mail', ip: '2001:db8::5' })!(mail)).toBe(true);
    expect(kindLabel(mon)).toBe('would reject');
    expect(summarize(rej)).toBe('limits.messagesPerHour · 450 4.7.1 Too much mail');
  });
});

describe('SpikeDetector', () => {
  it('alarms on a jump over the baseline after the warm-up, then stays quiet for the cooldown', () => {
    const d = new SpikeDetector({ minPerSecond: 10, factor: 4, cooldownMs: 60_000, warmupSeconds: 5 });
    let t = 0;
    const feed = (n: number) => d.feed(n, (t += 1000), t, { 'limits.messagesPerHour': n });
    for (let i = 0; i < 5; i++) expect(feed(i === 2 ? 50 : 2)).toBeNull(); // a jump during the warm-up says nothing
    for (let i = 0; i < 20; i++) expect(feed(2)).toBeNull();
    expect(feed(9)).toBeNull(); // under the minimum
    const s = feed(40);
    expect(s).toMatchObject({ rate: 40, topRule: 'limits.messagesPerHour' });
    expect(s!.baseline).toBeLessThan(5);
    for (let i = 0; i < 30; i++) expect(feed(45)).toBeNull(); // cooldown
    t += 60_000;
    for (let i = 0; i < 100; i++) feed(2);
    expect(feed(60)).not.toBeNull();
    // the same second twice counts once
    expect(d.feed(100, t, t)).toBeNull();
  });
});
