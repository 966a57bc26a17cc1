/**
 * events.subscribe's reconnect backlog, against a real relay: its bus (a small ring), its history on disk and its
 * wss channel. When more matching events happened since `sinceId` than the relay sends at once, the backlog must be
 * the NEWEST `backlogMax` of them, in one piece up to now (the console takes everything it lacks to lie between
 * sinceId and backlog[0]), whether they come from memory, from the history below it, or both; with a filter too.
 * A filter that matches little reads a bounded part of the history and says `truncated` when it stopped early.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayEvent } from '../shared/events.ts';
import type { Params } from '../shared/protocol.ts';
import { startManageRelay, type ManageRelay, type WssClient } from './helpers/wss-client.ts';

const RING = 200;
const BACKLOG_MAX = 300;
const SCAN_MAX = 4000;
/** more than one history page (5,000 ids) below the ring, so a reader that pages forward from sinceId stops early */
const N = 12_000;

let t: ManageRelay;
let viewer: WssClient;
/** the last id before the load */
let start: number;

/** the load: mostly connects from a few addresses, every fourth a rejection; two rare addresses deep in the history */
function load(): void {
  const bus = t.relay.bus;
  for (let i = 0; i < N; i++) {
    // 127.0.0.77 only right after `start` (about 12,000 ids below the ring), 127.0.0.78 about 3,000 below it
    const ip = i < 5 ? '127.0.0.77' : i >= N - RING - 3000 && i < N - RING - 2995 ? '127.0.0.78' : `127.0.0.${10 + (i % 7)}`;
    if (i % 4 === 0) {
      bus.emit({ kind: 'rejected', sessionId: `s${i}`, ip, stage: 'rcpt', rule: 'recipient.unknown', code: 550, text: '5.1.1 no such user', enforced: true });
    } else {
      bus.emit({ kind: 'connect', sessionId: `s${i}`, ip, port: 1000 + i });
    }
  }
}

/** 127.0.0.8/29 */
const inCidr = (ip: string) => ip.startsWith('127.0.0.') && Number(ip.slice(8)) >= 8 && Number(ip.slice(8)) <= 15;

/** events.subscribe, then unsubscribe at once (a session holds at most 8 subscriptions) */
async function subscribe(params: Params<'events.subscribe'>) {
  const sub = await viewer.call('events.subscribe', params);
  await viewer.call('events.unsubscribe', { subscriptionId: sub.subscriptionId });
  return sub;
}

/** every event the relay emitted with id > sinceId that passes `pred`, oldest first */
const matching = (sinceId: number, pred: (e: RelayEvent) => boolean = () => true) => t.events.filter((e) => e.id > sinceId && pred(e)).map((e) => e.id);

beforeAll(async () => {
  t = await startManageRelay({}, { relay: { eventRing: RING, manageLimits: { backlogMax: BACKLOG_MAX, backlogScanMax: SCAN_MAX } } });
  viewer = (await t.clientWithRole('viewer')).client;
  start = t.relay.bus.lastId;
  load();
  // the ring holds only the newest RING events: the rest of the load is in the history alone
  expect(t.relay.bus.since(start)).toHaveLength(RING);
});

afterAll(async () => {
  await t?.stop();
});

describe('events.subscribe backlog: the newest backlogMax matching events, contiguous up to now', () => {
  it('unfiltered, more than backlogMax since sinceId: the newest backlogMax ids, memory and the history below it in one piece', async () => {
    const sub = await subscribe({ sinceId: start });
    const all = matching(start);
    expect(all.length).toBeGreaterThan(N - 1);
    expect(sub.backlog.map((e) => e.id)).toEqual(all.slice(-BACKLOG_MAX));
    expect(sub.truncated).toBe(true);
    // the relay says how many it sends at most (the console's words use it)
    expect(sub.backlogMax).toBe(BACKLOG_MAX);
    // no hole: consecutive ids up to the relay's last one
    const ids = sub.backlog.map((e) => e.id);
    expect(ids.at(-1)).toBe(sub.lastId);
    expect(ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1)).toBe(true);
    // both parts are there: events older than the ring came from the history
    const oldestInRing = t.relay.bus.since(0)[0]!.id;
    expect(ids[0]).toBeLessThan(oldestInRing);
    expect(ids.filter((id) => id < oldestInRing)).toHaveLength(BACKLOG_MAX - RING);
  });

  it('filtered (rejectionsOnly): the newest backlogMax rejections, none skipped between them and now', async () => {
    const isRejection = (e: RelayEvent) => e.kind === 'rejected';
    const sub = await subscribe({ sinceId: start, filter: { rejectionsOnly: true } });
    const all = matching(start, isRejection);
    expect(all.length).toBeGreaterThan(BACKLOG_MAX);
    expect(sub.truncated).toBe(true);
    expect(sub.backlog.map((e) => e.id)).toEqual(all.slice(-BACKLOG_MAX));
    expect(sub.backlog.every(isRejection)).toBe(true);
  });

  it('filtered by kinds and a CIDR: the newest backlogMax of those', async () => {
    const pred = (e: RelayEvent) => e.kind === 'connect' && e.ip !== null && inCidr(e.ip);
    const sub = await subscribe({ sinceId: start, filter: { kinds: ['connect'], ip: '127.0.0.8/29' } });
    const all = matching(start, pred);
    expect(all.length).toBeGreaterThan(BACKLOG_MAX);
    expect(sub.truncated).toBe(true);
    expect(sub.backlog.map((e) => e.id)).toEqual(all.slice(-BACKLOG_MAX));
  });

  it('not cut: every matching event since sinceId, from the history and memory, truncated false', async () => {
    const last = t.relay.bus.lastId;
    // unfiltered, reaching below the ring: 250 events, 50 of them only in the history
    const a = await subscribe({ sinceId: last - 250 });
    expect(a.truncated).toBe(false);
    expect(a.backlog.map((e) => e.id)).toEqual(matching(last - 250));
    expect(a.backlog).toHaveLength(250);
    // exactly backlogMax: all of them, and nothing was left out
    const b = await subscribe({ sinceId: last - BACKLOG_MAX });
    expect(b.truncated).toBe(false);
    expect(b.backlog.map((e) => e.id)).toEqual(matching(last - BACKLOG_MAX));
    // rejections over the last 1,000 ids: 250, most of them from the history
    const isRejection = (e: RelayEvent) => e.kind === 'rejected';
    const c = await subscribe({ sinceId: last - 1000, filter: { rejectionsOnly: true } });
    expect(c.truncated).toBe(false);
    expect(c.backlog.map((e) => e.id)).toEqual(matching(last - 1000, isRejection));
    expect(c.backlog).toHaveLength(250);
  });

  it('a filter that matches little reads at most backlogScanMax stored events below the ring, and says truncated when it stopped there', async () => {
    // 127.0.0.78: 5 events about 3,000 ids below the ring, within the scan: found, nothing left out
    const near = await subscribe({ sinceId: start, filter: { ip: '127.0.0.78' } });
    expect(near.backlog.map((e) => e.id)).toEqual(matching(start, (e) => e.ip === '127.0.0.78'));
    expect(near.backlog).toHaveLength(5);
    // the whole span from `start` is more than the scan reads, so it cannot know nothing older matched
    expect(near.truncated).toBe(true);
    // 127.0.0.77: only right after `start`, about 12,000 ids below the ring: past the scan, so not found, and cut
    const far = await subscribe({ sinceId: start, filter: { ip: '127.0.0.77' } });
    expect(far.backlog).toEqual([]);
    expect(far.truncated).toBe(true);
    // from a sinceId within the scan, the same filter finds nothing and says nothing was cut
    const last = t.relay.bus.lastId;
    const within = await subscribe({ sinceId: last - RING - 1000, filter: { ip: '127.0.0.77' } });
    expect(within).toMatchObject({ backlog: [], truncated: false });
  });

  it('no sinceId: no backlog; still tells the limit', async () => {
    const sub = await subscribe({});
    expect(sub).toMatchObject({ backlog: [], truncated: false, backlogMax: BACKLOG_MAX });
  });
});
