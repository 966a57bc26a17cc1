/**
 * The event history and config revisions on disk: queries, retention, the size bound, and what survives a restart
 * (event ids, stored events, config revision numbers, revert to a revision made before the restart).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EventInput, RelayEvent } from '../shared/events.ts';
import { Relay } from '../relay/relay.ts';
import { EventBus } from '../relay/events/bus.ts';
import { EventHistory } from '../relay/store/history.ts';
import { sendMail } from './helpers/smtp-client.ts';
import { FakeClock } from './helpers/relay-harness.ts';
import { startManageRelay, WssClient, type ManageRelay } from './helpers/wss-client.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'rw-history-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function fill(bus: EventBus, clock: FakeClock, n: number, stepMs: number, ipOf: (i: number) => string): void {
  for (let i = 0; i < n; i++) {
    const ip = ipOf(i);
    const input: EventInput = i % 10 === 9
      ? { kind: 'rejected', sessionId: `s${i}`, ip, stage: 'mail', rule: 'limits.messagesPerHour', code: 450, text: '4.7.1 too much', enforced: true }
      : { kind: 'connect', sessionId: `s${i}`, ip };
    bus.emit(input);
    clock.advance(stepMs);
  }
}

describe('EventHistory', () => {
  it('stores what the bus emits and answers by IP, kinds, time range, session, in pages, both orders', () => {
    const clock = new FakeClock();
    const h = EventHistory.open({ file: path.join(tmp(), 'history.sqlite'), now: clock.now, flushMs: 10_000 });
    const bus = new EventBus({ now: clock.now });
    h.attach(bus);
    const t0 = clock.now();
    fill(bus, clock, 1000, 1000, (i) => `192.0.2.${i % 7}`);
    // reads see events that were not flushed yet
    expect(h.storedEvents).toBe(1000);
    const byIp = h.query({ ip: '192.0.2.3', limit: 1000 });
    expect(byIp.events.length).toBe(Math.ceil((1000 - 3) / 7));
    expect(byIp.events.every((e) => e.ip === '192.0.2.3')).toBe(true);
    expect(byIp.more).toBe(false);
    const rejected = h.query({ rejectionsOnly: true, limit: 1000 });
    expect(rejected.events).toHaveLength(100);
    const window = h.query({ from: t0 + 100_000, to: t0 + 200_000, limit: 1000 });
    expect(window.events).toHaveLength(100);
    expect(window.events[0]!.at).toBe(t0 + 100_000);
    const page1 = h.query({ ip: '192.0.2.3', order: 'desc', limit: 10 });
    const page2 = h.query({ ip: '192.0.2.3', order: 'desc', limit: 10, cursor: page1.events.at(-1)!.id });
    expect(page1.more).toBe(true);
    expect(page2.events[0]!.id).toBeLessThan(page1.events.at(-1)!.id);
    expect(h.query({ sessionId: 's42', limit: 5 }).events.map((e) => e.id)).toEqual([43]);
    expect(h.range(10, 20, 100).map((e) => e.id)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    // newest first (the subscription backlog below the bus ring), with the kinds and address tested on the rows
    expect(h.rangeDesc(10, 20, 100).map((e) => e.id)).toEqual([20, 19, 18, 17, 16, 15, 14, 13, 12, 11]);
    expect(h.rangeDesc(10, 20, 3).map((e) => e.id)).toEqual([20, 19, 18]);
    const all = h.range(0, 1000, 1000).reverse();
    const newest = (pred: (e: RelayEvent) => boolean, n: number) => all.filter(pred).slice(0, n).map((e) => e.id);
    expect(h.rangeDesc(0, 1000, 3, { kinds: ['rejected'] }).map((e) => e.id)).toEqual([1000, 990, 980]);
    expect(h.rangeDesc(0, 1000, 5, { ip: '192.0.2.3' }).map((e) => e.id)).toEqual(newest((e) => e.ip === '192.0.2.3', 5));
    expect(h.rangeDesc(0, 1000, 5, { kinds: ['rejected'], ip: '192.0.2.3' }).map((e) => e.id)).toEqual(newest((e) => e.ip === '192.0.2.3' && e.kind === 'rejected', 5));
    expect(h.rangeDesc(500, 1000, 10, { kinds: [] })).toEqual([]);
    expect(h.oldestId()).toBe(1);
    expect(h.lastEventId()).toBe(1000);
    h.close();
  });

  it('deletes events past events.retentionDays, and keeps the file under its size bound', () => {
    const clock = new FakeClock();
    let days = 7;
    const dir = tmp();
    const h = EventHistory.open({ file: path.join(dir, 'history.sqlite'), now: clock.now, retentionDays: () => days, flushMs: 10_000 });
    const bus = new EventBus({ now: clock.now });
    h.attach(bus);
    fill(bus, clock, 240, 3_600_000, () => '192.0.2.1'); // ten days, hourly
    h.prune();
    const oldest = h.oldestAt()!;
    expect(clock.now() - oldest).toBeLessThanOrEqual(7 * 86_400_000);
    expect(h.storedEvents).toBeLessThanOrEqual(7 * 24 + 1);
    days = 1;
    h.prune();
    expect(h.storedEvents).toBeLessThanOrEqual(25);
    h.close();

    // a tiny size bound: the oldest go first
    const small = EventHistory.open({ file: path.join(dir, 'small.sqlite'), now: clock.now, maxBytes: 64 * 1024, flushMs: 10_000, log: () => {} });
    const bus2 = new EventBus({ now: clock.now });
    small.attach(bus2);
    fill(bus2, clock, 5000, 1, (i) => `198.51.100.${i % 250}`);
    small.prune();
    const left = small.query({ order: 'asc', limit: 1 }).events[0]!;
    expect(left.id).toBeGreaterThan(1);
    expect(small.storedEvents).toBeLessThan(5000);
    small.close();
  });
});

describe('EventHistory counts and statements', () => {
  const connect = (id: number, at: number, ip: string): RelayEvent => ({ id, at, kind: 'connect', sessionId: `s${id}`, ip });

  it('counts an event id stored twice (INSERT OR REPLACE) once, through flush and load, and across a reopen', () => {
    const file = path.join(tmp(), 'history.sqlite');
    const t0 = 1_700_000_000_000;
    const h = EventHistory.open({ file, now: () => t0, flushMs: 10_000 });
    h.record(connect(1, t0, '192.0.2.1'));
    h.record(connect(2, t0, '192.0.2.2'));
    h.flush();
    expect(h.storedEvents).toBe(2);
    // the same id again, in a later flush: the row is replaced, not added
    h.record(connect(2, t0 + 1, '192.0.2.22'));
    h.flush();
    expect(h.storedEvents).toBe(2);
    expect(h.query({ ip: '192.0.2.22', limit: 10 }).events.map((e) => e.id)).toEqual([2]);
    expect(h.query({ ip: '192.0.2.2', limit: 10 }).events).toEqual([]);
    // twice within one batch, and a block of 64 (the multi-row insert) that overlaps stored ids
    h.record(connect(3, t0, '192.0.2.3'));
    h.record(connect(3, t0, '192.0.2.33'));
    h.flush();
    expect(h.storedEvents).toBe(3);
    // new ids above every stored one (the bus's case): each is a new row
    h.record(connect(4, t0, '192.0.2.4'));
    h.record(connect(5, t0, '192.0.2.5'));
    h.flush();
    expect(h.storedEvents).toBe(5);
    h.load(Array.from({ length: 130 }, (_, i) => connect(i + 1, t0 + i, '198.51.100.1')));
    expect(h.storedEvents).toBe(130);
    h.close();
    const again = EventHistory.open({ file, now: () => t0, flushMs: 10_000 });
    expect(again.storedEvents).toBe(130);
    again.close();
  });

  it('answers repeated queries with different filters right while reusing a bounded set of prepared statements', () => {
    const clock = new FakeClock();
    const h = EventHistory.open({ file: path.join(tmp(), 'history.sqlite'), now: clock.now, flushMs: 10_000 });
    const bus = new EventBus({ now: clock.now });
    h.attach(bus);
    const t0 = clock.now();
    fill(bus, clock, 200, 1000, (i) => `192.0.2.${i % 4}`);
    const ids = (r: { events: RelayEvent[] }) => r.events.map((e) => e.id);
    const every = h.query({ limit: 1000 }).events;
    const expected = (pred: (e: RelayEvent) => boolean) => every.filter(pred).map((e) => e.id);
    const rounds = () => {
      for (let n = 0; n < 4; n++) {
        const ip = `192.0.2.${n}`;
        // same SQL text, other values: each answer is for its own arguments
        expect(ids(h.query({ ip, limit: 1000 }))).toEqual(expected((e) => e.ip === ip));
        expect(ids(h.query({ ip, kinds: ['rejected'], limit: 1000 }))).toEqual(expected((e) => e.ip === ip && e.kind === 'rejected'));
        expect(ids(h.query({ ip, from: t0 + n * 10_000, to: t0 + 100_000, order: 'desc', limit: 1000 }))).toEqual(
          expected((e) => e.ip === ip && e.at >= t0 + n * 10_000 && e.at < t0 + 100_000).reverse(),
        );
        expect(ids(h.query({ sessionId: `s${n * 10}`, limit: 5 }))).toEqual([n * 10 + 1]);
        const first = h.query({ ip, order: 'asc', limit: 7 });
        expect(ids(h.query({ ip, order: 'asc', cursor: first.events.at(-1)!.id, limit: 7 }))).toEqual(expected((e) => e.ip === ip).slice(7, 14));
      }
      expect(ids(h.query({ kinds: ['connect', 'rejected'], limit: 1000 }))).toEqual(expected(() => true));
      expect(ids(h.query({ rejectionsOnly: true, limit: 1000 }))).toEqual(expected((e) => e.kind === 'rejected'));
      expect(h.range(10, 15, 100).map((e) => e.id)).toEqual([11, 12, 13, 14, 15]);
      expect(h.countBetween(t0, t0 + 50_000)).toBe(50);
    };
    rounds();
    const held = h.cachedStatements;
    expect(held).toBeGreaterThan(0);
    // the same queries again prepare nothing new
    rounds();
    expect(h.cachedStatements).toBe(held);
    // many distinct SQL texts (one per number of kinds): the cache stays bounded and answers stay right
    const kinds = Array.from({ length: 100 }, (_, i) => `kind${i}`);
    for (let n = 1; n <= 100; n++) expect(h.query({ kinds: ['rejected', ...kinds.slice(0, n)], limit: 1000 }).events).toHaveLength(20);
    expect(h.cachedStatements).toBeLessThanOrEqual(64);
    rounds();
    h.close();
  });
});

describe('across a restart', () => {
  let t: ManageRelay | null = null;
  let second: Relay | null = null;
  afterEach(async () => {
    await second?.stop();
    second = null;
    await t?.stop();
    t = null;
  });

  it('auth.login names the history: the same historyId across a restart on the same data dir, a new one once history.sqlite is removed', async () => {
    t = await startManageRelay();
    const dir = t.dir;
    const loginTo = async (relay: Relay) => {
      const ws = await WssClient.connect(relay.manageAddress.port, relay.identity.fingerprint256);
      const login = await ws.login(t!.adminToken);
      await ws.close();
      return login;
    };
    const first = await loginTo(t.relay);
    expect(first.historyId).toMatch(/^[0-9a-f-]{36}$/);
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    await t.relay.stop();

    // the same history.sqlite: the same history, the same id
    second = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', now: t.clock.now, log: () => {} });
    const again = await loginTo(second);
    expect(again.historyId).toBe(first.historyId);
    expect(again.lastEventId).toBeGreaterThan(0);
    await second.stop();

    // history.sqlite removed: a fresh history, another id
    for (const f of ['history.sqlite', 'history.sqlite-wal', 'history.sqlite-shm']) fs.rmSync(path.join(dir, f), { force: true });
    second = await Relay.start({ dataDir: dir, smtpListen: '127.0.0.1:0', now: t.clock.now, log: () => {} });
    const fresh = await loginTo(second);
    expect(fresh.historyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(fresh.historyId).not.toBe(first.historyId);
    // and it is kept with the new file from then on
    expect(second.history.historyId).toBe(fresh.historyId);
    const dns = t.dns;
    t = null;
    await second.stop();
    second = null;
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('event ids continue, history and config revisions survive, and revert works to a revision from before', async () => {
    t = await startManageRelay({ limits: { messagesPerHour: { max: 10 } } });
    const admin = await t.admin();
    await sendMail(t.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.5' });
    const g = await admin.call('config.get', {});
    const c = structuredClone(g.config);
    c.limits.messagesPerHour.max = 20;
    const u1 = await admin.call('config.update', { baseRevision: g.revision, config: c });
    c.limits.messagesPerHour.max = 30;
    const u2 = await admin.call('config.update', { baseRevision: u1.revision, config: c });
    const lastId = t.relay.bus.lastId;
    await admin.close();
    await t.relay.stop();

    // restart on the same directory
    second = await Relay.start({ dataDir: t.dir, smtpListen: '127.0.0.1:0', now: t.clock.now, log: () => {} });
    expect(second.configRevision).toBe(u2.revision);
    const ws = await WssClient.connect(second.manageAddress.port, second.identity.fingerprint256);
    await ws.login(t.adminToken);
    const login = await ws.call('stats.get', {});
    expect(login.configRevision).toBe(u2.revision);
    const old = await ws.call('events.query', { ip: '127.0.0.5', limit: 100 });
    expect(old.events.map((e: RelayEvent) => e.kind)).toContain('accepted');
    expect((await ws.call('config.history', { limit: 10 })).revisions.map((r) => r.revision)).toEqual([u2.revision, u1.revision, g.revision]);

    // new events continue after the old ids, so a console's "since id" still means something
    await sendMail(second.smtpAddress.port, { from: 'a@example.org', to: ['alice@example.com'], localAddress: '127.0.0.6' });
    const fresh = await ws.call('events.query', { ip: '127.0.0.6', order: 'asc', limit: 1 });
    expect(fresh.events[0]!.id).toBeGreaterThan(lastId);
    // the first event after the restart (perhaps the queue retrying the old message) has the next id
    const next = await ws.call('events.query', { order: 'asc', cursor: lastId, limit: 1 });
    expect(next.events[0]!.id).toBe(lastId + 1);
    const sub = await ws.call('events.subscribe', { sinceId: lastId - 3 });
    expect(sub.backlog[0]!.id).toBe(lastId - 2);

    // revert to a revision made before the restart
    const r = await ws.call('config.revert', { revision: g.revision, baseRevision: u2.revision });
    expect(r.revision).toBe(u2.revision + 1);
    expect(second.config.current.limits.messagesPerHour.max).toBe(10);
    await ws.close();
    await second.stop();

    // a hand edit while stopped becomes a revision of its own
    const file = path.join(t.dir, 'config.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { limits: { messagesPerHour: { max: number } } };
    json.limits.messagesPerHour.max = 44;
    fs.writeFileSync(file, JSON.stringify(json));
    second = await Relay.start({ dataDir: t.dir, smtpListen: '127.0.0.1:0', now: t.clock.now, log: () => {} });
    expect(second.configRevision).toBe(r.revision + 1);
    const top = second.revisions.list(1)[0]!;
    expect(top).toMatchObject({ revision: r.revision + 1, by: 'file' });
    expect(top.changes).toEqual([{ path: 'limits.messagesPerHour.max', op: 'change', before: 10, after: 44 }]);
    // t.stop() must not stop the first relay twice
    const dns = t.dns;
    const dir = t.dir;
    t = null;
    await second.stop();
    second = null;
    await dns.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
